// The HTML report. See fer/report.h.
#include "fer/report.h"

#include <stb_image_write.h>  // the implementation is compiled once in Debian's libstb

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>

#include "fer/atomic_file.h"
#include "fer/error.h"
#include "fer/svg_chart.h"

namespace fer {

namespace {

using svg::escape;
using svg::exact;
using svg::fixed;

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    out.push_back(trim(line.substr(start, comma - start)));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// An id-safe spelling of a class name: [A-Za-z0-9_-] kept, anything else '_'.
std::string id_part(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) c = '_';
  return out;
}

// <tag id=... data-value=...>shown</tag>: a number a test can find by id.
std::string valued(const char* tag, const std::string& id, double value, const std::string& shown,
                   const std::string& extra = "") {
  return std::string("<") + tag + " id=\"" + escape(id) + "\" data-value=\"" + exact(value) +
         "\"" + extra + ">" + escape(shown) + "</" + tag + ">";
}

const char* kCss = R"CSS(
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 26px; margin: 4px 0 18px; }
h2 { font-size: 20px; margin: 0 0 12px; }
h3 { font-size: 16px; margin: 22px 0 10px; color: #333; }
section { background: #fff; border-radius: 10px; padding: 18px 22px 22px; margin-bottom: 22px;
  box-shadow: 0 1px 3px rgba(0,0,0,.08), 0 1px 2px rgba(0,0,0,.04); }
.note { color: #6b4e00; background: #fff6d9; display: inline-block; padding: 2px 8px;
  border-radius: 4px; margin: 0 0 10px; }
.muted { color: #666; }
code { background: #f1f3f5; padding: 1px 5px; border-radius: 4px; font-size: 13px;
  word-break: break-all; }
.charts { display: flex; flex-wrap: wrap; gap: 18px 28px; align-items: flex-start; }
.charts svg { display: block; max-width: 100%; height: auto; }
.summary { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0 4px; }
.stat { background: #f6f8fa; border: 1px solid #e4e7eb; border-radius: 8px; padding: 8px 16px;
  min-width: 130px; }
.stat .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stat .label { color: #666; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
table.metrics { border-collapse: collapse; font-variant-numeric: tabular-nums; min-width: 560px; }
table.metrics th, table.metrics td { padding: 5px 14px; border-bottom: 1px solid #eceef1; }
table.metrics th { text-align: right; font-weight: 600; color: #444; background: #f6f8fa; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
table.metrics td { text-align: right; }
table.metrics tr.avg td { background: #fafbfc; font-weight: 500; }
table.metrics tr.first-avg td { border-top: 2px solid #d5d9de; }
.faces { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 14px; }
figure.face { margin: 0; padding: 8px; background: #f6f8fa; border: 1px solid #e4e7eb;
  border-radius: 8px; text-align: center; }
figure.face img { image-rendering: pixelated; image-rendering: crisp-edges; display: block;
  margin: 0 auto 6px; background: #000; }
figure.face figcaption { font-size: 12.5px; line-height: 1.35; }
figure.face .truth { color: #1a7f37; font-weight: 600; }
figure.face .predicted { color: #c62828; font-weight: 600; }
figure.face .source { display: block; color: #777; font-size: 11px; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; direction: rtl; }
footer { color: #888; font-size: 12px; text-align: center; }
)CSS";

std::string training_section(const std::vector<HistoryRow>& history) {
  std::string out = "<section id=\"training\">\n<h2>Training</h2>\n";
  if (history.empty()) return out + "<p class=\"muted\">No epochs recorded yet.</p>\n</section>\n";

  size_t best = 0;  // the epoch with the best validation accuracy (first one on ties)
  for (size_t i = 1; i < history.size(); ++i)
    if (history[i].val_accuracy > history[best].val_accuracy) best = i;
  out += "<p>" + std::to_string(history.size()) + (history.size() == 1 ? " epoch" : " epochs") +
         " &middot; best validation accuracy " +
         valued("strong", "best-val-accuracy", history[best].val_accuracy,
                fixed(history[best].val_accuracy, 4)) +
         " at epoch " + valued("strong", "best-epoch", history[best].epoch,
                               std::to_string(history[best].epoch)) +
         " &middot; last epoch: training accuracy " + fixed(history.back().accuracy, 4) +
         ", validation accuracy " + fixed(history.back().val_accuracy, 4) + "</p>\n";

  std::vector<double> epochs, loss, acc, val_loss, val_acc, lr;
  for (const HistoryRow& r : history) {
    epochs.push_back(r.epoch);
    loss.push_back(r.loss);
    acc.push_back(r.accuracy);
    val_loss.push_back(r.val_loss);
    val_acc.push_back(r.val_accuracy);
    lr.push_back(r.lr);
  }
  const bool markers = history.size() <= 40;
  auto series = [&](const std::string& name, const std::vector<double>& y, int color) {
    svg::Series s;
    s.name = name;
    s.x = epochs;
    s.y = y;
    s.color = svg::series_color(color);
    s.markers = markers;
    return s;
  };
  auto chart = [&](const std::string& id, const std::string& title, const std::string& y_label) {
    svg::LineChart c;
    c.id = id;
    c.title = title;
    c.x_label = "epoch";
    c.y_label = y_label;
    c.integer_x = true;
    c.plot_width = 400;
    c.plot_height = 230;
    c.legend_below = true;  // two charts side by side on a laptop screen
    return c;
  };

  // Accuracy on a fixed 0..1 axis: runs compare at a glance and chance level stays visible.
  svg::LineChart accuracy = chart("chart-accuracy", "Accuracy", "accuracy");
  accuracy.y_min = 0;
  accuracy.y_max = 1;
  accuracy.series = {series("train", acc, 0), series("validation", val_acc, 1)};
  svg::LineChart losses = chart("chart-loss", "Loss", "cross-entropy");
  losses.series = {series("train", loss, 0), series("validation", val_loss, 1)};
  svg::LineChart rate = chart("chart-lr", "Learning rate", "learning rate");
  rate.series = {series("learning rate", lr, 2)};

  out += "<div class=\"charts\">\n" + svg::line_chart(accuracy) + svg::line_chart(losses) +
         svg::line_chart(rate) + "</div>\n</section>\n";
  return out;
}

std::string face_figure(const ReportFace& face, size_t index) {
  const data::Image& im = face.image;
  const std::string name = face.source.empty() ? "misclassified face " + std::to_string(index)
                                               : face.source;
  const std::string uri = "data:image/png;base64," + base64(encode_png(im, name));
  // Shown 96 px on its longer side; `pixelated` keeps 48x48 faces sharp instead of blurred.
  const double scale = 96.0 / std::max(im.width, im.height);
  const int w = std::max(1, static_cast<int>(std::lround(im.width * scale)));
  const int h = std::max(1, static_cast<int>(std::lround(im.height * scale)));
  std::string base = face.source;
  const size_t slash = base.find_last_of('/');
  if (slash != std::string::npos) base = base.substr(slash + 1);
  return "<figure class=\"face\" data-truth=\"" + escape(face.truth) + "\" data-predicted=\"" +
         escape(face.predicted) + "\" data-confidence=\"" + exact(face.confidence) + "\">" +
         "<img src=\"" + uri + "\" width=\"" + std::to_string(w) + "\" height=\"" +
         std::to_string(h) + "\" alt=\"" + escape(face.truth + " face predicted as " +
                                                 face.predicted) +
         "\" title=\"" + escape(face.source) + "\"><figcaption><span class=\"truth\">" +
         escape(face.truth) + "</span> &rarr; <span class=\"predicted\">" +
         escape(face.predicted) + "</span> (" + fixed(face.confidence, 2) + ")" +
         (base.empty() ? "" : "<span class=\"source\" title=\"" + escape(face.source) + "\">" +
                                  escape(base) + "</span>") +
         "</figcaption></figure>\n";
}

std::string evaluation_section(const EvaluationSection& ev) {
  const ConfusionMatrix& cm = ev.confusion;
  const int k = cm.num_classes();
  FER_CHECK(static_cast<int>(ev.classes.size()) == k, "report: ", ev.classes.size(),
            " class names for a ", k, "-class confusion matrix");
  FER_CHECK(ev.roc.empty() || static_cast<int>(ev.roc.size()) == k, "report: ", ev.roc.size(),
            " ROC curves for ", k, " classes");
  const std::vector<std::string>& names = ev.classes;

  std::string out = "<section id=\"evaluation\">\n<h2>Evaluation</h2>\n";
  if (!ev.note.empty()) out += "<p class=\"note\">" + escape(ev.note) + "</p>\n";
  if (!ev.data.empty()) out += "<p>Data: <code>" + escape(ev.data) + "</code></p>\n";

  // Summary.
  const double auc = ev.roc.empty() ? std::nan("") : macro_auc(ev.roc);
  auto stat = [&](const std::string& id, const std::string& label, double v,
                  const std::string& shown) {
    return "<div class=\"stat\"><div class=\"value\">" + valued("span", id, v, shown) +
           "</div><div class=\"label\">" + label + "</div></div>\n";
  };
  out += "<div class=\"summary\">\n" + stat("accuracy", "accuracy", cm.accuracy(), fixed(cm.accuracy(), 4)) +
         stat("macro-f1", "macro F1", cm.macro_f1(), fixed(cm.macro_f1(), 4));
  if (!ev.roc.empty()) out += stat("macro-auc", "macro AUC", auc, fixed(auc, 4));
  out += stat("loss", "loss", ev.loss, fixed(ev.loss, 4)) +
         stat("images", "images", double(cm.total()), std::to_string(cm.total())) + "</div>\n";

  // Confusion matrices: counts, and each row divided by its total (= recall on the diagonal),
  // which shows the rare classes as clearly as the common ones.
  svg::Heatmap counts;
  counts.id = "confusion-counts";
  counts.title = "Confusion matrix (counts)";
  counts.row_title = "true class";
  counts.col_title = "predicted class";
  counts.row_labels = counts.col_labels = names;
  svg::Heatmap normalized = counts;
  normalized.id = "confusion-normalized";
  normalized.title = "Confusion matrix (row-normalized)";
  normalized.v_max = 1;
  for (int t = 0; t < k; ++t) {
    std::vector<double> row, row_n;
    std::vector<std::string> text, text_n;
    const double support = double(cm.support(t));
    for (int p = 0; p < k; ++p) {
      const int64_t c = cm.count(t, p);
      row.push_back(double(c));
      text.push_back(std::to_string(c));
      const double f = support > 0 ? double(c) / support : 0.0;
      row_n.push_back(f);
      text_n.push_back(fixed(f, 2));
    }
    counts.values.push_back(row);
    counts.text.push_back(text);
    normalized.values.push_back(row_n);
    normalized.text.push_back(text_n);
  }
  out += "<h3>Confusion matrix</h3>\n<p class=\"muted\">Rows: true class; columns: predicted "
         "class. The row-normalized matrix has each class's recall on its diagonal.</p>\n"
         "<div class=\"charts\">\n" + svg::heatmap(counts) + svg::heatmap(normalized) + "</div>\n";

  // Per-class table with scikit-learn's macro (plain mean) and weighted (by support) rows.
  out += "<h3>Per-class metrics</h3>\n<table class=\"metrics\">\n<thead><tr><th>class</th>"
         "<th>precision</th><th>recall</th><th>F1</th><th>support</th>";
  if (!ev.roc.empty()) out += "<th>AUC</th>";
  out += "</tr></thead>\n<tbody>\n";
  double macro_p = 0, macro_r = 0, weighted_p = 0, weighted_r = 0, auc_weighted = 0,
         auc_support = 0;
  const double total = double(cm.total());
  for (int c = 0; c < k; ++c) {
    const std::string id = id_part(names[c]);
    const double p = cm.precision(c), r = cm.recall(c), f = cm.f1(c);
    const double s = double(cm.support(c));
    macro_p += p / k;
    macro_r += r / k;
    weighted_p += p * s;
    weighted_r += r * s;
    // A bar behind F1 makes the weak classes stand out in a column of similar digits.
    const std::string bar = " style=\"background: linear-gradient(90deg, #d6e6f5 " +
                            fixed(f * 100, 1) + "%, transparent " + fixed(f * 100, 1) + "%)\"";
    out += "<tr data-class=\"" + escape(names[c]) + "\"><td>" + escape(names[c]) + "</td>" +
           valued("td", "precision-" + id, p, fixed(p, 4)) +
           valued("td", "recall-" + id, r, fixed(r, 4)) + valued("td", "f1-" + id, f, fixed(f, 4), bar) +
           valued("td", "support-" + id, s, std::to_string(cm.support(c)));
    if (!ev.roc.empty()) {
      const double a = ev.roc[c].auc;
      out += valued("td", "auc-" + id, a, fixed(a, 4));
      if (!std::isnan(a)) {
        auc_weighted += a * s;
        auc_support += s;
      }
    }
    out += "</tr>\n";
  }
  auto ratio = [](double a, double b) { return b == 0 ? 0.0 : a / b; };
  auto avg_row = [&](const std::string& key, const std::string& label, double p, double r,
                     double f, double a, const std::string& cls) {
    std::string row = "<tr class=\"avg " + cls + "\"><td>" + label + "</td>" +
                      valued("td", key + "-precision", p, fixed(p, 4)) +
                      valued("td", key + "-recall", r, fixed(r, 4)) +
                      valued("td", key + "-f1", f, fixed(f, 4)) +
                      valued("td", key + "-support", total, std::to_string(cm.total()));
    if (!ev.roc.empty()) row += valued("td", key + "-auc", a, fixed(a, 4));
    return row + "</tr>\n";
  };
  out += avg_row("macro-avg", "macro avg", macro_p, macro_r, cm.macro_f1(), auc, "first-avg");
  out += avg_row("weighted-avg", "weighted avg", ratio(weighted_p, total), ratio(weighted_r, total),
                 cm.weighted_f1(),
                 auc_support > 0 ? auc_weighted / auc_support : std::nan(""), "");
  out += "</tbody>\n</table>\n";

  // ROC curves, one per class, with the chance diagonal.
  if (!ev.roc.empty()) {
    svg::LineChart roc;
    roc.id = "chart-roc";
    roc.title = "ROC curves (one vs rest)";
    roc.x_label = "false positive rate";
    roc.y_label = "true positive rate";
    roc.plot_width = roc.plot_height = 340;
    roc.x_min = roc.y_min = 0;
    roc.x_max = roc.y_max = 1;
    for (int c = 0; c < k; ++c) {
      svg::Series s;
      s.name = names[c] + " (AUC " + fixed(ev.roc[c].auc, 4) + ")";
      s.x = ev.roc[c].fpr;
      s.y = ev.roc[c].tpr;
      s.color = svg::series_color(c);
      s.css_class = "roc";
      s.attributes = " data-class=\"" + escape(names[c]) + "\" data-auc=\"" +
                     exact(ev.roc[c].auc) + "\"";
      roc.series.push_back(s);
    }
    svg::Series chance;
    chance.name = "chance (AUC 0.5)";
    chance.x = {0, 1};
    chance.y = {0, 1};
    chance.color = "#9a9a9a";
    chance.dashed = true;
    chance.css_class = "diagonal";
    roc.series.push_back(chance);
    out += "<h3>ROC curves</h3>\n<p class=\"muted\">Each class against all others, ranked by "
           "its predicted probability; macro AUC " + fixed(auc, 4) +
           " (classes without positives or negatives are n/a).</p>\n<div class=\"charts\">\n" +
           svg::line_chart(roc) + "</div>\n";
  }

  if (!ev.misclassified.empty()) {
    out += "<h3>Most confident mistakes</h3>\n<p class=\"muted\">true class &rarr; predicted "
           "class (probability of the prediction); hover a face for its file.</p>\n"
           "<div class=\"faces\">\n";
    for (size_t i = 0; i < ev.misclassified.size(); ++i)
      out += face_figure(ev.misclassified[i], i);
    out += "</div>\n";
  }
  return out + "</section>\n";
}

}  // namespace

std::vector<HistoryRow> read_history_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("history '", path, "': cannot read the file (", std::strerror(errno), ")");
  std::string line;
  int line_no = 0;
  std::vector<std::string> header;
  while (header.empty() && std::getline(in, line)) {
    ++line_no;
    if (!trim(line).empty()) header = split_csv(line);
  }
  FER_CHECK(!header.empty(), "history '", path, "': the file is empty (expected a header line ",
            "starting with epoch,loss,accuracy,...)");

  const char* const required[] = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"};
  std::map<std::string, size_t> column;
  for (const char* name : required) {
    const auto it = std::find(header.begin(), header.end(), name);
    FER_CHECK(it != header.end(), path, ":", line_no, ": the header has no column '", name,
              "' (it has: ", trim(line), ")");
    column[name] = static_cast<size_t>(it - header.begin());
  }

  std::vector<HistoryRow> rows;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    const std::vector<std::string> fields = split_csv(line);
    FER_CHECK(fields.size() == header.size(), path, ":", line_no, ": ", fields.size(),
              " fields, but the header has ", header.size());
    auto number = [&](const char* name) {
      const std::string& s = fields[column[name]];
      char* end = nullptr;
      const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
      FER_CHECK(!s.empty() && end == s.c_str() + s.size(), path, ":", line_no, ": column '", name,
                "': '", s, "' is not a number");
      return v;
    };
    HistoryRow r;
    const double epoch = number("epoch");
    FER_CHECK(epoch == std::floor(epoch) && std::fabs(epoch) < 1e9, path, ":", line_no,
              ": column 'epoch': '", fields[column["epoch"]], "' is not a whole number");
    r.epoch = static_cast<int>(epoch);
    r.loss = number("loss");
    r.accuracy = number("accuracy");
    r.val_loss = number("val_loss");
    r.val_accuracy = number("val_accuracy");
    r.lr = number("lr");
    rows.push_back(r);
  }
  FER_CHECK(!in.bad(), "history '", path, "': read error");
  return rows;
}

std::vector<int> most_confident_mistakes(const std::vector<std::vector<float>>& probabilities,
                                         const std::vector<int>& labels, int count) {
  FER_CHECK(probabilities.size() == labels.size(), "most_confident_mistakes: ",
            probabilities.size(), " rows of probabilities but ", labels.size(), " labels");
  FER_CHECK(count >= 0, "most_confident_mistakes: count must be >= 0, got ", count);
  std::vector<int> wrong;
  std::vector<float> confidence(labels.size(), 0.0f);
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::vector<float>& p = probabilities[i];
    FER_CHECK(!p.empty(), "most_confident_mistakes: example ", i, " has no probabilities");
    const int best = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
    if (best == labels[i]) continue;
    confidence[i] = p[best];
    wrong.push_back(static_cast<int>(i));
  }
  std::stable_sort(wrong.begin(), wrong.end(),
                   [&](int a, int b) { return confidence[a] > confidence[b]; });
  if (static_cast<int>(wrong.size()) > count) wrong.resize(count);
  return wrong;
}

std::string base64(const std::vector<uint8_t>& bytes) {
  static const char* const alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(bytes[i]) << 16) | (uint32_t(bytes[i + 1]) << 8) | bytes[i + 2];
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i < bytes.size()) {  // 1 or 2 bytes left: pad to a whole group of 4 characters
    const bool two = i + 1 < bytes.size();
    const uint32_t v = (uint32_t(bytes[i]) << 16) | (two ? uint32_t(bytes[i + 1]) << 8 : 0);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += two ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::vector<uint8_t> encode_png(const data::Image& image, const std::string& name) {
  FER_CHECK(image.width > 0 && image.height > 0, "image '", name, "': cannot encode an empty ",
            image.width, "x", image.height, " image");
  FER_CHECK(image.channels >= 1 && image.channels <= 4, "image '", name, "': cannot encode ",
            image.channels, " channels (1-4)");
  const size_t expected = size_t(image.width) * image.height * image.channels;
  FER_CHECK(image.pixels.size() == expected, "image '", name, "': ", image.pixels.size(),
            " bytes of pixels for ", image.width, "x", image.height, "x", image.channels, " (",
            expected, ")");
  std::vector<uint8_t> png;
  auto append = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(context);
    const auto* bytes = static_cast<const uint8_t*>(data);
    out->insert(out->end(), bytes, bytes + size);
  };
  const int ok = stbi_write_png_to_func(append, &png, image.width, image.height, image.channels,
                                        image.pixels.data(), image.width * image.channels);
  FER_CHECK(ok && !png.empty(), "image '", name, "': PNG encoding failed");
  return png;
}

std::string report_html(const std::string& title, const std::vector<HistoryRow>* history,
                        const EvaluationSection* evaluation) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
      escape(title) + "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n<main>\n<h1>" +
      escape(title) + "</h1>\n";
  if (history) out += training_section(*history);
  if (evaluation) out += evaluation_section(*evaluation);
  if (!history && !evaluation) out += "<section><p class=\"muted\">Nothing to report.</p></section>\n";
  out += "<footer>Made by fer. Self-contained: no scripts, no external files.</footer>\n"
         "</main>\n</body>\n</html>\n";
  return out;
}

void write_report(const std::string& path, const std::string& html) {
  write_file_atomically(path, [&](std::FILE* f) { fwrite_all(f, html.data(), html.size()); });
}

EvaluationSection evaluation_section(const Evaluation& evaluation, const data::Dataset& dataset,
                                     const std::string& data_path, const std::string& note,
                                     int faces) {
  FER_CHECK(evaluation.probabilities.size() == dataset.size(), "report: the evaluation kept ",
            evaluation.probabilities.size(), " probability rows for ", dataset.size(),
            " examples (evaluate with keep_probabilities)");
  EvaluationSection section;
  section.data = data_path;
  section.classes = dataset.classes;
  section.confusion = evaluation.confusion;
  section.loss = evaluation.loss;
  section.note = note;
  section.roc = roc_per_class(evaluation.probabilities, dataset.labels,
                              static_cast<int>(dataset.classes.size()));
  for (const int i : most_confident_mistakes(evaluation.probabilities, dataset.labels, faces)) {
    ReportFace face;
    face.image = dataset.images[i];
    face.truth = dataset.classes[dataset.labels[i]];
    face.predicted = dataset.classes[evaluation.predictions[i]];
    face.confidence = evaluation.probabilities[i][evaluation.predictions[i]];
    face.source = dataset.sources[i];
    section.misclassified.push_back(std::move(face));
  }
  return section;
}

}  // namespace fer
