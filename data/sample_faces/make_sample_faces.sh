#!/bin/sh
# Rebuilds this sample from the full FER2013 folder layout (read-only source).
#   usage: data/sample_faces/make_sample_faces.sh /path/to/fer2013
# For each split and class: sort the file names, take every k-th file (k = files / wanted)
# until `wanted` files are copied -- 60 per class from train/, 15 from val/. The JPEG bytes
# are copied unchanged, so the sample decodes exactly like the full dataset.
set -eu
src=${1:?usage: $0 /path/to/fer2013}
dst=$(cd "$(dirname "$0")" && pwd)
for split in train val; do
  if [ "$split" = train ]; then wanted=60; else wanted=15; fi
  for cls in angry disgust fear happy neutral sad surprise; do
    mkdir -p "$dst/$split/$cls"
    count=$(ls "$src/$split/$cls" | wc -l)
    step=$((count / wanted)); [ "$step" -ge 1 ] || step=1
    ls "$src/$split/$cls" | LC_ALL=C sort |
      awk -v step="$step" -v wanted="$wanted" '(NR - 1) % step == 0 && taken < wanted { print; taken++ }' |
      while read -r name; do cp "$src/$split/$cls/$name" "$dst/$split/$cls/$name"; done
  done
done
