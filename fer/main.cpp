// Placeholder entry point; replaced by the CLI (fer/cli.cpp) below.
#include <cstdio>
int main() { std::puts("fer"); return 0; }
