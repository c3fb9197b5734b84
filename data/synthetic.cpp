// data/synthetic.cpp — procedural expression faces (see data/synthetic.h and docs/data.md).
//
// Rendering is analytic: every output pixel is mapped back into the face's own frame (undoing the
// pose), each shape reports a signed distance there, and coverage = clamp(0.5 - d / pixel, 0, 1)
// antialiases the edge. So the same face can be drawn at 48x48 or 128x128 without a resize, and the
// cost is a few shape tests per pixel.
#include "data/synthetic.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "data/parallel.h"
#include "data/rng.h"

namespace kiln::data {
namespace {

using detail::Rng;

struct Vec2 {
  double x, y;
};
inline Vec2 operator-(Vec2 a, Vec2 b) {
  return {a.x - b.x, a.y - b.y};
}
inline Vec2 operator+(Vec2 a, Vec2 b) {
  return {a.x + b.x, a.y + b.y};
}
inline Vec2 operator*(double s, Vec2 a) {
  return {s * a.x, s * a.y};
}
inline double dot(Vec2 a, Vec2 b) {
  return a.x * b.x + a.y * b.y;
}
inline double length(Vec2 a) {
  return std::sqrt(dot(a, a));
}

double segment_distance(Vec2 p, Vec2 a, Vec2 b) {
  Vec2 pa = p - a, ba = b - a;
  double h = std::clamp(dot(pa, ba) / std::max(dot(ba, ba), 1e-12), 0.0, 1.0);
  return length(pa - h * ba);
}

// Approximate signed distance to an axis-aligned ellipse with semi-axes r centred at c (exact on
// the axes, close enough elsewhere for antialiasing).
double ellipse_distance(Vec2 p, Vec2 c, Vec2 r) {
  Vec2 q = p - c;
  double k0 = length({q.x / r.x, q.y / r.y});
  double k1 = length({q.x / (r.x * r.x), q.y / (r.y * r.y)});
  if (k1 < 1e-12) return -std::min(r.x, r.y);
  return k0 * (k0 - 1.0) / k1;
}

// A stroke along a polyline: the class cues (mouth curves, brows, folds) are all strokes.
struct Stroke {
  std::vector<Vec2> points;
  double half_width = 0.0;
  double level = 0.0;       // intensity painted
  Vec2 lo{0, 0}, hi{0, 0};  // bounding box, grown by the stroke width (set by bound())
  void bound() {
    lo = hi = points[0];
    for (Vec2 q : points) {
      lo = {std::min(lo.x, q.x), std::min(lo.y, q.y)};
      hi = {std::max(hi.x, q.x), std::max(hi.y, q.y)};
    }
    lo = lo - Vec2{half_width, half_width};
    hi = hi + Vec2{half_width, half_width};
  }
  // Distance, or `far` when p lies more than `margin` outside the bounding box (a cheap cull: the
  // caller only needs exact distances within a pixel of the stroke).
  double distance(Vec2 p, double margin = 1e9, double far = 1e9) const {
    if (p.x < lo.x - margin || p.x > hi.x + margin || p.y < lo.y - margin || p.y > hi.y + margin)
      return far;
    double d = 1e9;
    for (size_t i = 0; i + 1 < points.size(); ++i)
      d = std::min(d, segment_distance(p, points[i], points[i + 1]));
    return d - half_width;
  }
};

struct Blob {  // filled ellipse
  Vec2 center, radii;
  double level = 0.0;
  double distance(Vec2 p, double margin = 1e9, double far = 1e9) const {
    if (std::abs(p.x - center.x) > radii.x + margin || std::abs(p.y - center.y) > radii.y + margin)
      return far;
    return ellipse_distance(p, center, radii);
  }
};

// One face, in its own frame: x right, y down, the face ellipse centred at the origin with
// semi-axes ~(0.40, 0.48) (units of the image side before scaling).
struct Face {
  // pose: image point u (in [-0.5, 0.5]^2) maps to face point R(-angle) (u - shift) / scale
  Vec2 shift{0, 0};
  double angle = 0, scale = 1;
  // global appearance
  double background = 0.5;
  Vec2 background_gradient{0, 0};
  Vec2 face_radii{0.40, 0.48};
  double skin = 0.7, side_shade = 0;
  bool hair = false;
  double hair_level = 0.2, hairline = -0.3, hair_tilt = 0;
  // features, painted in this order over the skin
  std::vector<Blob> blobs;
  std::vector<Stroke> strokes;
  std::vector<Blob> top_blobs;  // pupils: painted after the sclera blobs
  // occluding patch, in image coordinates
  bool occluded = false;
  Vec2 occ_center{0, 0}, occ_radii{0.1, 0.1};
  double occ_level = 0.5;
  bool occ_round = false;
  // photometric
  double gain = 1, noise = 0;
  Vec2 light_gradient{0, 0};
  std::array<double, 3> skin_tint{1, 1, 1}, background_tint{1, 1, 1};
};

// Points of y = y0 + f(t) for x = x0 + t * half_width, t in [-1, 1].
template <typename F>
std::vector<Vec2> curve(double x0, double y0, double half_width, F f, int segments = 8) {
  std::vector<Vec2> pts;
  for (int i = 0; i <= segments; ++i) {
    double t = -1.0 + 2.0 * i / segments;
    pts.push_back({x0 + t * half_width, y0 + f(t)});
  }
  return pts;
}

enum Expression { kAngry, kDisgust, kFear, kHappy, kSad, kSurprise, kNeutral };

// The expression-specific parts. `dark` is the level of dark features (brows, closed lines, mouth).
void add_expression(Face& f, int label, Rng& rng, double dark) {
  const double eye_y = rng.uniform(-0.10, -0.05), eye_x = rng.uniform(0.13, 0.17);
  const double brow_y = eye_y - rng.uniform(0.08, 0.10);
  const double mouth_y = rng.uniform(0.20, 0.27), mouth_x = rng.uniform(-0.02, 0.02);
  const double stroke = rng.uniform(0.016, 0.024);  // half width of strokes
  const double sclera = std::min(1.0, f.skin + rng.uniform(0.2, 0.4));

  // Brows: inner end at |x| ~ 0.06, outer end at |x| ~ 0.22. `inner_drop` > 0 lowers the inner end
  // (angry V), < 0 raises it (sad / fear); `raise` lifts the whole brow; `arch` bends it.
  auto brow = [&](double side, double raise, double inner_drop, double arch) {
    double xi = side * rng.uniform(0.05, 0.07), xo = side * rng.uniform(0.20, 0.24);
    double y = brow_y - raise;
    Stroke s;
    for (int i = 0; i <= 4; ++i) {
      double t = i / 4.0;
      double x = xi + (xo - xi) * t;
      double yy = y + inner_drop * (1 - t) - arch * 4 * t * (1 - t);
      s.points.push_back({x, yy});
    }
    s.half_width = stroke * rng.uniform(1.0, 1.3);
    s.level = dark;
    f.strokes.push_back(s);
  };
  // Eyes: "normal" a dark almond, "narrow" a thin slit, "wide" a bright sclera with a dark pupil.
  enum EyeKind { kNormal, kNarrow, kWide };
  auto eyes = [&](EyeKind kind) {
    double gaze_x = rng.uniform(-0.015, 0.015), gaze_y = rng.uniform(-0.01, 0.01);
    for (double side : {-1.0, 1.0}) {
      Vec2 c{side * eye_x, eye_y};
      if (kind == kNormal) {
        f.blobs.push_back({c, {rng.uniform(0.045, 0.06), rng.uniform(0.022, 0.03)}, dark});
      } else if (kind == kNarrow) {
        f.blobs.push_back({c, {rng.uniform(0.05, 0.065), rng.uniform(0.008, 0.012)}, dark});
      } else {
        f.blobs.push_back({c, {rng.uniform(0.055, 0.07), rng.uniform(0.045, 0.055)}, sclera});
        f.top_blobs.push_back({c + Vec2{gaze_x, gaze_y},
                               {rng.uniform(0.022, 0.028), rng.uniform(0.022, 0.028)},
                               dark});
      }
    }
  };
  const double mw = rng.uniform(0.10, 0.14);  // mouth half width
  auto mouth_curve = [&](double bend) {       // bend > 0: corners up (smile), < 0: frown
    Stroke s;
    s.points = curve(mouth_x, mouth_y, mw, [&](double t) { return bend * (1 - t * t); });
    s.half_width = stroke * rng.uniform(1.0, 1.3);
    s.level = dark;
    f.strokes.push_back(s);
  };
  const double side = rng.chance(0.5) ? 1.0 : -1.0;

  switch (label) {
    case kAngry:  // brows pulled down into a V, narrowed eyes, pressed short mouth
      brow(-1, 0, rng.uniform(0.04, 0.06), 0);
      brow(1, 0, rng.uniform(0.04, 0.06), 0);
      eyes(kNarrow);
      {
        Stroke s;
        double w = mw * rng.uniform(0.6, 0.75);
        s.points = curve(
            mouth_x, mouth_y, w, [&](double t) { return -0.012 * (1 - t * t); }, 4);
        s.half_width = stroke * rng.uniform(1.3, 1.6);
        s.level = dark;
        f.strokes.push_back(s);
      }
      break;
    case kDisgust:  // one brow lowered, narrowed eyes, wavy mouth, folds beside the nose
      brow(side, 0, rng.uniform(0.04, 0.06), 0);
      brow(-side, rng.uniform(0.0, 0.02), 0, 0);
      eyes(kNarrow);
      {
        Stroke s;
        double amp = rng.uniform(0.018, 0.026), tilt = side * rng.uniform(0.0, 0.03);
        s.points = curve(
            mouth_x, mouth_y, mw, [&](double t) { return amp * std::sin(6.2832 * t) + tilt * t; },
            12);
        s.half_width = stroke;
        s.level = dark;
        f.strokes.push_back(s);
        for (double sd : {-1.0, 1.0}) {
          Stroke fold;
          fold.points = {{sd * 0.07, 0.05}, {sd * 0.12, 0.13}};
          fold.half_width = stroke * 0.8;
          fold.level = dark;
          f.strokes.push_back(fold);
        }
      }
      break;
    case kFear:  // raised brows with inner ends up, wide eyes, wide short open mouth
      brow(-1, rng.uniform(0.02, 0.035), -rng.uniform(0.03, 0.045), 0);
      brow(1, rng.uniform(0.02, 0.035), -rng.uniform(0.03, 0.045), 0);
      eyes(kWide);
      f.blobs.push_back(
          {{mouth_x, mouth_y}, {mw * rng.uniform(0.85, 1.0), rng.uniform(0.025, 0.035)}, dark});
      break;
    case kHappy:  // flat brows, normal eyes, smile
      brow(-1, 0, rng.uniform(-0.01, 0.01), rng.uniform(0, 0.015));
      brow(1, 0, rng.uniform(-0.01, 0.01), rng.uniform(0, 0.015));
      eyes(kNormal);
      mouth_curve(rng.uniform(0.04, 0.065));
      break;
    case kSad:  // inner brow ends up, normal eyes, frown
      brow(-1, 0, -rng.uniform(0.03, 0.045), 0);
      brow(1, 0, -rng.uniform(0.03, 0.045), 0);
      eyes(kNormal);
      mouth_curve(-rng.uniform(0.035, 0.06));
      break;
    case kSurprise:  // high arched brows, wide eyes, tall open O mouth
      brow(-1, rng.uniform(0.04, 0.06), 0, rng.uniform(0.02, 0.035));
      brow(1, rng.uniform(0.04, 0.06), 0, rng.uniform(0.02, 0.035));
      eyes(kWide);
      f.blobs.push_back(
          {{mouth_x, mouth_y + 0.02}, {rng.uniform(0.05, 0.07), rng.uniform(0.065, 0.085)}, dark});
      break;
    case kNeutral:  // flat brows, normal eyes, straight mouth of normal width
      brow(-1, 0, rng.uniform(-0.01, 0.01), 0);
      brow(1, 0, rng.uniform(-0.01, 0.01), 0);
      eyes(kNormal);
      mouth_curve(rng.uniform(-0.008, 0.008));
      break;
    default:
      KILN_FAIL("synthetic face label ", label, " is outside 0..6");
  }
  // The nose is the same for every class: a distractor that moves with the pose.
  Stroke nose;
  double nx = rng.uniform(-0.01, 0.01);
  nose.points = {{nx, eye_y + 0.02}, {nx + rng.uniform(-0.01, 0.01), 0.09}};
  nose.half_width = stroke * 0.7;
  nose.level = 0.5 * (f.skin + dark);
  f.strokes.insert(f.strokes.begin(), nose);
  for (double sd : {-1.0, 1.0})
    f.blobs.insert(f.blobs.begin(), Blob{{nx + sd * 0.03, 0.11}, {0.014, 0.01}, dark});
  for (Stroke& s : f.strokes) s.bound();
}

Face random_face(int label, uint64_t key, int channels) {
  Rng rng(key);
  Face f;
  f.shift = {rng.uniform(-0.09, 0.09), rng.uniform(-0.08, 0.08)};
  f.angle = rng.uniform(-0.26, 0.26);  // +-15 degrees
  f.scale = rng.uniform(0.78, 1.05);
  f.face_radii = {rng.uniform(0.36, 0.42), rng.uniform(0.44, 0.50)};
  f.skin = rng.uniform(0.45, 0.85);
  f.background = rng.uniform(0.05, 0.95);
  double bg_dir = rng.uniform(0, 6.2832), bg_amp = rng.uniform(0, 0.5);
  f.background_gradient = {bg_amp * std::cos(bg_dir), bg_amp * std::sin(bg_dir)};
  f.side_shade = rng.uniform(-0.35, 0.35);
  f.hair = rng.chance(0.6);
  f.hair_level = rng.uniform(0.05, 0.45);
  f.hairline = rng.uniform(-0.36, -0.26);
  f.hair_tilt = rng.uniform(-0.15, 0.15);
  double dark = std::max(0.0, f.skin - rng.uniform(0.3, 0.5));
  add_expression(f, label, rng, dark);
  f.occluded = rng.chance(0.3);
  f.occ_center = {rng.uniform(-0.45, 0.45), rng.uniform(-0.45, 0.45)};
  f.occ_radii = {rng.uniform(0.05, 0.14), rng.uniform(0.05, 0.14)};
  f.occ_level = rng.uniform(0, 1);
  f.occ_round = rng.chance(0.5);
  f.gain = rng.uniform(0.6, 1.25);
  double l_dir = rng.uniform(0, 6.2832), l_amp = rng.uniform(0, 0.4);
  f.light_gradient = {l_amp * std::cos(l_dir), l_amp * std::sin(l_dir)};
  f.noise = rng.uniform(0.0, 0.06);
  if (channels == 3) {
    // A skin hue (red above green above blue, as skin is) and an arbitrary background hue.
    double warmth = rng.uniform(0.0, 0.25);
    f.skin_tint = {1 + warmth, 1, 1 - warmth};
    for (auto& t : f.background_tint) t = rng.uniform(0.7, 1.3);
  }
  return f;
}

double coverage(double distance, double pixel) {
  return std::clamp(0.5 - distance / pixel, 0.0, 1.0);
}

void render(uint8_t* out, const ImageSpec& spec, const Face& f, uint64_t noise_key) {
  const double c = std::cos(f.angle), s = std::sin(f.angle);
  const double side = std::max(spec.height, spec.width);
  const double pixel = 1.0 / (side * f.scale);  // one pixel in face units
  Rng noise(noise_key);
  for (int y = 0; y < spec.height; ++y) {
    for (int x = 0; x < spec.width; ++x) {
      Vec2 u{(x + 0.5) / side - 0.5 * spec.width / side,
             (y + 0.5) / side - 0.5 * spec.height / side};
      Vec2 d = u - f.shift;
      Vec2 p{(c * d.x + s * d.y) / f.scale, (-s * d.x + c * d.y) / f.scale};  // face frame

      double v = f.background + dot(f.background_gradient, u);
      // Hair: a cap over the top of a slightly larger head ellipse, cut at a tilted hairline.
      if (f.hair) {
        double head = ellipse_distance(p, {0, -0.02}, f.face_radii + Vec2{0.05, 0.05});
        double line = (f.hairline + f.hair_tilt * p.x) - p.y;  // > 0 above the hairline
        v += (f.hair_level - v) * coverage(std::max(head, -line), pixel);
      }
      double face_cov = coverage(ellipse_distance(p, {0, 0}, f.face_radii), pixel);
      if (f.hair) {
        double line = (f.hairline + f.hair_tilt * p.x) - p.y;
        face_cov *= 1.0 - coverage(-line, pixel);
      }
      double skin = std::clamp(f.skin + f.side_shade * p.x, 0.0, 1.0);
      v += (skin - v) * face_cov;
      if (face_cov > 0) {
        // Shapes farther than a pixel report `far`, whose coverage is 0.
        const double m = pixel, far = 1.0;
        for (const Blob& b : f.blobs)
          v += (b.level - v) * face_cov * coverage(b.distance(p, m, far), pixel);
        for (const Stroke& st : f.strokes)
          v += (st.level - v) * face_cov * coverage(st.distance(p, m, far), pixel);
        for (const Blob& b : f.top_blobs)
          v += (b.level - v) * face_cov * coverage(b.distance(p, m, far), pixel);
      }
      if (f.occluded) {
        double od = f.occ_round ? ellipse_distance(u, f.occ_center, f.occ_radii)
                                : std::max(std::abs(u.x - f.occ_center.x) - f.occ_radii.x,
                                           std::abs(u.y - f.occ_center.y) - f.occ_radii.y);
        double oc = coverage(od, 1.0 / side);
        v += (f.occ_level - v) * oc;
        face_cov *= 1 - oc;
      }
      v = f.gain * v + dot(f.light_gradient, u);
      uint8_t* px = out + (size_t(y) * spec.width + x) * spec.channels;
      for (int ch = 0; ch < spec.channels; ++ch) {
        double tint = 1.0;
        if (spec.channels == 3)
          tint = f.background_tint[ch] + (f.skin_tint[ch] - f.background_tint[ch]) * face_cov;
        double val = v * tint + f.noise * noise.approx_normal();
        px[ch] = uint8_t(std::lround(std::clamp(val, 0.0, 1.0) * 255.0));
      }
    }
  }
}

void generate_split(Dataset& out, const SyntheticOptions& o, int per_class, uint64_t split) {
  out = Dataset::with_spec(o.spec, fer_class_names());
  const size_t n = size_t(per_class) * kFerClasses;
  out.pixels.resize(n * o.spec.pixels());
  out.labels.resize(n);
  detail::parallel_for(
      n,
      [&](size_t i) {
        const int label = int(i % kFerClasses);
        out.labels[i] = label;
        render_synthetic_face(out.image(i), o.spec, label, detail::hash_keys(o.seed, split, i));
      },
      o.threads);
}

}  // namespace

void render_synthetic_face(uint8_t* out, const ImageSpec& spec, int label, uint64_t key) {
  KILN_CHECK(label >= 0 && label < kFerClasses, "synthetic face label ", label, " is outside 0..6");
  KILN_CHECK(spec.channels == 1 || spec.channels == 3,
             "synthetic face: channels must be 1 or 3, got ", spec.channels);
  Face f = random_face(label, key, spec.channels);
  render(out, spec, f, detail::mix64(key ^ 0x6e6f697365ULL));
}

Splits make_synthetic(const SyntheticOptions& o) {
  KILN_CHECK(o.spec.channels == 1 || o.spec.channels == 3,
             "synthetic data: channels must be 1 or 3, got ", o.spec.channels);
  KILN_CHECK(o.spec.height >= 8 && o.spec.width >= 8,
             "synthetic data: images must be at least 8x8, got ", o.spec.height, "x", o.spec.width);
  KILN_CHECK(o.train_per_class > 0 && o.val_per_class > 0 && o.test_per_class >= 0,
             "synthetic data: need train_per_class > 0, val_per_class > 0, test_per_class >= 0");
  Splits s;
  generate_split(s.train, o, o.train_per_class, 0);
  generate_split(s.val, o, o.val_per_class, 1);
  generate_split(s.test, o, o.test_per_class, 2);
  return s;
}

}  // namespace kiln::data
