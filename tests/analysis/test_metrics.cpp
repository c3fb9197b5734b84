// tests/analysis/test_metrics.cpp — confusion matrix and per-class metrics against hand counts.
#include <catch2/catch.hpp>

#include "analysis/metrics.h"
#include "core/error.h"

using namespace kiln::analysis;

TEST_CASE("confusion matrix, precision, recall, F1 and accuracy by hand", "[cpu]") {
  // true:  0 0 0 0 1 1 2 2 2 2
  // pred:  0 0 1 2 1 1 2 2 0 2
  const ConfusionMatrix cm({0, 0, 0, 0, 1, 1, 2, 2, 2, 2}, {0, 0, 1, 2, 1, 1, 2, 2, 0, 2}, 3);
  CHECK(cm.count(0, 0) == 2);
  CHECK(cm.count(0, 1) == 1);
  CHECK(cm.count(2, 0) == 1);
  CHECK(cm.row_total(0) == 4);
  CHECK(cm.col_total(0) == 3);
  CHECK(cm.row_fraction(2, 2) == Approx(0.75));
  const Metrics m = compute_metrics(cm);
  CHECK(m.accuracy == Approx(0.7));
  CHECK(m.per_class[0].recall == Approx(0.5));
  CHECK(m.per_class[0].precision == Approx(2.0 / 3));
  CHECK(m.per_class[0].f1 == Approx(2 * 0.5 * (2.0 / 3) / (0.5 + 2.0 / 3)));
  CHECK(m.per_class[1].precision == Approx(2.0 / 3));
  CHECK(m.per_class[1].recall == Approx(1.0));
  CHECK(m.per_class[2].support == 4);
  CHECK(m.macro_recall == Approx((0.5 + 1.0 + 0.75) / 3));
}

TEST_CASE("a class never predicted and never present gets 0, not NaN", "[cpu]") {
  const ConfusionMatrix cm({0, 0, 1}, {0, 1, 1}, 3);
  const Metrics m = compute_metrics(cm);
  CHECK(m.per_class[2].precision == 0);
  CHECK(m.per_class[2].recall == 0);
  CHECK(m.per_class[2].f1 == 0);
  CHECK(cm.row_fraction(2, 2) == 0);
}

TEST_CASE("confusion and metrics CSV", "[cpu]") {
  const ConfusionMatrix cm({0, 0, 1, 1}, {0, 1, 1, 1}, 2);
  CHECK(confusion_csv(cm, {"a", "b"}, false) == "true\\predicted,a,b\na,1,1\nb,0,2\n");
  CHECK(confusion_csv(cm, {"a", "b"}, true) ==
        "true\\predicted,a,b\na,0.5000,0.5000\nb,0.0000,1.0000\n");
  const std::string csv = metrics_csv(compute_metrics(cm), {"a", "b"});
  CHECK(csv.rfind("class,precision,recall,f1,support\na,1.0000,0.5000,0.6667,2\n", 0) == 0);
  CHECK(csv.find("\naccuracy,,,0.7500,4\n") != std::string::npos);
  CHECK_THROWS_AS(ConfusionMatrix({0, 3}, {0, 0}, 2), kiln::Error);
}

TEST_CASE("class names that need it are quoted in the CSV documents", "[cpu]") {
  // Image-folder class names are folder names: a comma or a quote in one must not add a column.
  const ConfusionMatrix cm({0, 1}, {0, 1}, 2);
  CHECK(confusion_csv(cm, {"sad, a bit", "say \"hi\""}, false) ==
        "true\\predicted,\"sad, a bit\",\"say \"\"hi\"\"\"\n"
        "\"sad, a bit\",1,0\n\"say \"\"hi\"\"\",0,1\n");
  const std::string csv = metrics_csv(compute_metrics(cm), {"a,b", "c"});
  CHECK(csv.find("\n\"a,b\",1.0000,1.0000,1.0000,1\nc,1.0000,") != std::string::npos);
}
