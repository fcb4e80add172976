// shared_content.cpp — judges whether two bench pictures share real content (one drawing in two colourings, frames of one sprite, one photograph in two packages), with OpenCV ORB and a pixel check, so that the metrics neither reward nor punish naming such a reference.
//
// usage: shared_content DATA_DIR PAIRS.tsv OUT.tsv [--cache CACHE.tsv] [--threads N]
//
// PAIRS.tsv: `source<TAB>reference` per line (paths relative to DATA_DIR): a picture a query was made
// from and a reference some method named for that query (bench/run pools every method's predictions,
// as retrieval benchmarks pool the systems' results before judging them). Each pair is judged by a
// fixed rule that does not involve any method's own evidence (rule 5): ORB (1000 features, longer side
// 640) of the source, as it is and mirrored, matched by brute force against the reference's (ratio 0.8,
// then one match per reference keypoint), and RANSAC fits (4 px) of a homography and of an affine map;
// the pair shares content when one fit has at least 20 inliers, the reference warped onto the source by
// it has gradient magnitudes (Gaussian sigma 1.5, Sobel) that correlate with the source's at 0.6 or more
// over the box of the inliers, and that box covers at least 10% of the source or of the reference.
// Shared drawn or photographed content passes; pictures that merely look alike (two playing cards with
// the same pips) do not align pixel for pixel.
//
// OUT.tsv: `source reference mirrored inliers agreement area reference_area` for every pair that shares
// content, sorted.
// --cache keeps every verdict (shared or not) so a later run judges only new pairs; a cache written
// by another version of the rule is ignored. Pictures are loaded with libvips (GIF included; alpha
// flattened on white). Deterministic: RANSAC's generator is reset before every pair.
#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgproc.hpp>

#include <omp.h>
#include <vips/vips.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "common.hpp"

using namespace bench;

namespace {

const int kMaxSide = 640;
const int kFeatures = 1000;
const int kMinInliers = 20;
const double kMinAgreement = 0.6;
const double kMinArea = 0.10;
// Written at the top of the cache: verdicts made under another rule are not reused.
const char *const kRule =
    "shared-content rule 5: orb1000 side640 ratio0.8 ransac4 homography|affine inliers20 gradcorr0.6 area0.10 of either one-to-one";

struct Pic {
    cv::Mat grey;                     // longer side <= kMaxSide
    std::vector<cv::KeyPoint> kp[2];  // [0] as is, [1] mirrored (sources only)
    cv::Mat desc[2];
    bool ok = false;
};

cv::Mat load_grey(const std::string &path)
{
    VipsImage *t = nullptr, *f = nullptr, *g = nullptr, *u = nullptr;
    cv::Mat out;
    if (vips_thumbnail(path.c_str(), &t, kMaxSide, "size", VIPS_SIZE_DOWN, NULL) == 0) {
        VipsImage *cur = t;
        if (vips_image_hasalpha(cur)) {
            VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
            if (vips_flatten(cur, &f, "background", white, NULL) == 0)
                cur = f;
            vips_area_unref(VIPS_AREA(white));
        }
        if (vips_colourspace(cur, &g, VIPS_INTERPRETATION_B_W, NULL) == 0 &&
            vips_cast_uchar(g, &u, NULL) == 0) {
            size_t n = 0;
            void *mem = vips_image_write_to_memory(u, &n);
            int w = vips_image_get_width(u), h = vips_image_get_height(u), b = vips_image_get_bands(u);
            if (mem && n == (size_t)w * h * b) {
                cv::Mat m(h, w, CV_8UC(b), mem);
                std::vector<cv::Mat> ch;
                cv::split(m, ch);
                out = ch[0].clone();
            }
            g_free(mem);
        }
    }
    for (VipsImage *im : {u, g, f, t})
        if (im)
            g_object_unref(im);
    if (out.empty())
        std::fprintf(stderr, "shared_content: cannot read %s: %s\n", path.c_str(), vips_error_buffer());

    vips_error_clear();
    return out;
}

// Gradient magnitude of a picture (Gaussian sigma 1.5, Sobel).
cv::Mat gradient(const cv::Mat &m)
{
    cv::Mat b, gx, gy, mag;
    cv::GaussianBlur(m, b, cv::Size(0, 0), 1.5);
    cv::Sobel(b, gx, CV_32F, 1, 0);
    cv::Sobel(b, gy, CV_32F, 0, 1);
    cv::magnitude(gx, gy, mag);
    return mag;
}

// Pearson correlation of a and c over the pixels where mask is set; -1 when undefined.
double correlation(const cv::Mat &a, const cv::Mat &c, const cv::Mat &mask)
{
    double n = 0, sa = 0, sc = 0, saa = 0, scc = 0, sac = 0;
    for (int y = 0; y < a.rows; y++)
        for (int x = 0; x < a.cols; x++) {
            if (!mask.at<uint8_t>(y, x))
                continue;
            double p = a.at<float>(y, x), q = c.at<float>(y, x);
            n++;
            sa += p;
            sc += q;
            saa += p * p;
            scc += q * q;
            sac += p * q;
        }
    if (n < 1)
        return -1;
    double va = saa - sa * sa / n, vc = scc - sc * sc / n;
    if (va <= 1e-9 || vc <= 1e-9)
        return -1;
    return (sac - sa * sc / n) / std::sqrt(va * vc);
}

struct Agreement {
    double gradient = -1; // correlation of gradient magnitudes
    double area = 0;      // the inliers' box as a share of the source
    double ref_area = 0;  // the same box mapped into the reference, as a share of it
};

// How well the reference warped onto the source agrees with it over the box of the inlier points (in
// source pixels): the correlation of their gradient magnitudes (src_grad: gradient() of the source, in
// the reading the fit was made for), -1 when the box is under 16 pixels a side or the warp leaves too
// few pixels in it.
Agreement agreement(const cv::Mat &src_grad, const cv::Mat &ref, const cv::Mat &H, const std::vector<cv::Point2f> &pts)
{
    Agreement ag;
    const cv::Size size = src_grad.size();
    cv::Rect box = cv::boundingRect(pts) & cv::Rect(0, 0, size.width, size.height);
    ag.area = (double)box.area() / ((double)size.width * size.height);
    std::vector<cv::Point2f> corners = {{(float)box.x, (float)box.y},
                                        {(float)(box.x + box.width), (float)box.y},
                                        {(float)(box.x + box.width), (float)(box.y + box.height)},
                                        {(float)box.x, (float)(box.y + box.height)}},
                             mapped;
    cv::perspectiveTransform(corners, mapped, H);
    ag.ref_area = std::min(1.0, std::fabs(cv::contourArea(mapped)) / ((double)ref.cols * ref.rows));
    if (box.width < 16 || box.height < 16)
        return ag;
    cv::Mat warped, valid;
    cv::warpPerspective(ref, warped, H.inv(), size, cv::INTER_LINEAR, cv::BORDER_CONSTANT, 0);
    cv::warpPerspective(cv::Mat(ref.size(), CV_8U, cv::Scalar(255)), valid, H.inv(), size, cv::INTER_NEAREST,
                        cv::BORDER_CONSTANT, 0);
    cv::Mat v = valid(box).clone();
    cv::erode(v, v, cv::Mat(), cv::Point(-1, -1), 3); // the warped border is an edge of its own
    if (cv::countNonZero(v) < 0.5 * box.area())
        return ag;
    ag.gradient = correlation(src_grad(box), gradient(warped)(box), v);
    return ag;
}

struct Fit {
    int inliers = 0;
    cv::Mat H;                    // source (in orientation o) -> reference, 3 x 3
    std::vector<cv::Point2f> in;  // the inliers, in source pixels
};

// The inliers of a RANSAC fit (4 px) of the tentative matches a -> b: a homography, or an affine map
// (returned as 3 x 3). A homography fitted to matches that mostly lie along a few strokes can be
// degenerate (nearly singular, folding the picture onto a line) and still count dozens of inliers; the
// affine fit of the same matches then gives the warp that the pixel check can trust.
Fit fit(const std::vector<cv::Point2f> &a, const std::vector<cv::Point2f> &b, bool affine)
{
    Fit f;
    cv::theRNG().state = 0x12345678;
    cv::Mat mask;
    if (affine) {
        cv::Mat A = cv::estimateAffine2D(a, b, mask, cv::RANSAC, 4.0, 2000, 0.999);
        if (A.empty())
            return f;
        f.H = cv::Mat::eye(3, 3, CV_64F);
        A.copyTo(f.H(cv::Rect(0, 0, 3, 2)));
    } else {
        f.H = cv::findHomography(a, b, cv::RANSAC, 4.0, mask, 2000, 0.999);
        if (f.H.empty())
            return f;
    }
    for (int i = 0; i < mask.rows; i++)
        if (mask.at<uint8_t>(i))
            f.in.push_back(a[i]);
    f.inliers = (int)f.in.size();
    return f;
}

struct Judged {
    bool shared = false;
    int mirrored = 0, inliers = 0;
    Agreement ag;
};

// Every reading (the source as it is and mirrored) and both fits (homography, affine) are tried; the
// pair shares content when one of them reaches the rule's thresholds: enough inliers, gradients that
// agree, and a box of at least kMinArea of the source or of the reference (a figure reused in a bigger
// scene is a small part of the scene and most of the figure). The verdict reports the passing candidate
// with the most inliers, or, if none passes, the candidate with the most inliers (agreement measured from
// 12 inliers on).
Judged judge(const Pic &s, const Pic &r, const cv::BFMatcher &bf)
{
    Judged best;
    if (r.desc[0].rows < 4)
        return best;
    for (int o = 0; o < 2; o++) {
        if (s.desc[o].rows < 4)
            continue;
        std::vector<std::vector<cv::DMatch>> m;
        bf.knnMatch(s.desc[o], r.desc[0], m, 2);
        // ratio test, then one match per reference keypoint (the closest): many source keypoints on one
        // reference keypoint would let a fit that folds a region onto a point count them all
        std::map<int, cv::DMatch> by_ref;
        for (const auto &k : m)
            if (k.size() == 2 && k[0].distance < 0.8f * k[1].distance) {
                auto it = by_ref.find(k[0].trainIdx);
                if (it == by_ref.end() || k[0].distance < it->second.distance ||
                    (k[0].distance == it->second.distance && k[0].queryIdx < it->second.queryIdx))
                    by_ref[k[0].trainIdx] = k[0];
            }
        std::vector<cv::Point2f> a, b;
        for (const auto &kv : by_ref) {
            a.push_back(s.kp[o][kv.second.queryIdx].pt);
            b.push_back(r.kp[0][kv.second.trainIdx].pt);
        }
        if (a.size() < 8)
            continue;
        cv::Mat src_grad; // the source's gradient in this reading, once, for whichever fit needs it
        for (int affine = 0; affine < 2; affine++) {
            Fit f = fit(a, b, affine != 0);
            Agreement ag;
            if (f.inliers >= 12) {
                if (src_grad.empty()) {
                    cv::Mat src; // a new buffer: flipping into a header of s.grey would mirror the picture itself
                    if (o)
                        cv::flip(s.grey, src, 1);
                    else
                        src = s.grey;
                    src_grad = gradient(src);
                }
                ag = agreement(src_grad, r.grey, f.H, f.in);
            }
            Judged j{f.inliers >= kMinInliers && ag.gradient >= kMinAgreement &&
                         std::max(ag.area, ag.ref_area) >= kMinArea,
                     o, f.inliers, ag};
            if (j.shared > best.shared || (j.shared == best.shared && j.inliers > best.inliers))
                best = j;
        }
    }
    return best;
}

} // namespace

int main(int argc, char **argv)
{
    std::vector<std::string> pos;
    std::string cache_path;
    int threads = omp_get_max_threads();
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--threads" && i + 1 < argc)
            threads = std::atoi(argv[++i]);
        else if (a == "--cache" && i + 1 < argc)
            cache_path = argv[++i];
        else if (!a.empty() && a[0] == '-')
            die("shared_content: unknown option " + a);
        else
            pos.push_back(a);
    }
    if (pos.size() != 3 || threads < 1)
        die("usage: shared_content DATA_DIR PAIRS.tsv OUT.tsv [--cache CACHE.tsv] [--threads N]");
    if (VIPS_INIT(argv[0]))
        die("shared_content: libvips failed to start");
    vips_concurrency_set(1);
    const std::string data = pos[0];
    cv::setNumThreads(1);
    omp_set_num_threads(threads);

    // Verdicts already made under this rule: "source\treference" -> the verdict line's tail.
    std::map<std::string, std::string> cache;
    if (!cache_path.empty()) {
        std::ifstream f(cache_path);
        std::string line;
        if (f && std::getline(f, line) && line == std::string("# ") + kRule)
            while (std::getline(f, line)) {
                size_t t1 = line.find('\t'), t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
                if (t2 != std::string::npos)
                    cache[line.substr(0, t2)] = line.substr(t2 + 1);
            }
    }
    std::vector<std::pair<std::string, std::string>> pairs, todo;
    for (const auto &l : read_lines(pos[1])) {
        size_t t = l.find('\t');
        if (t == std::string::npos || t == 0 || t + 1 >= l.size())
            die("shared_content: " + pos[1] + ": expected source<TAB>reference, got: " + l);
        pairs.push_back({l.substr(0, t), l.substr(t + 1)});
    }
    std::sort(pairs.begin(), pairs.end());
    pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
    for (const auto &p : pairs)
        if (p.first != p.second && !cache.count(p.first + "\t" + p.second))
            todo.push_back(p);

    // Every picture of the pairs to judge, described once; sources also mirrored.
    std::map<std::string, int> id;
    std::vector<std::string> names;
    std::vector<char> is_source;
    for (const auto &p : todo)
        for (int k = 0; k < 2; k++) {
            const std::string &n = k ? p.second : p.first;
            auto it = id.emplace(n, (int)names.size());
            if (it.second) {
                names.push_back(n);
                is_source.push_back(0);
            }
            if (!k)
                is_source[it.first->second] = 1;
        }
    std::vector<Pic> pic(names.size());
    double t0 = now_s();
#pragma omp parallel
    {
        cv::Ptr<cv::ORB> orb = cv::ORB::create(kFeatures);
#pragma omp for schedule(dynamic, 8)
        for (long i = 0; i < (long)names.size(); i++) {
            Pic &p = pic[i];
            p.grey = load_grey(data + "/" + names[i]);
            if (p.grey.empty())
                continue;
            orb->detectAndCompute(p.grey, cv::noArray(), p.kp[0], p.desc[0]);
            if (is_source[i]) {
                cv::Mat flipped;
                cv::flip(p.grey, flipped, 1);
                orb->detectAndCompute(flipped, cv::noArray(), p.kp[1], p.desc[1]);
            }
            p.ok = true;
        }
    }
    std::vector<std::string> verdicts(todo.size());
#pragma omp parallel
    {
        cv::BFMatcher bf(cv::NORM_HAMMING);
#pragma omp for schedule(dynamic, 16)
        for (long i = 0; i < (long)todo.size(); i++) {
            const Pic &s = pic[id[todo[i].first]], &r = pic[id[todo[i].second]];
            Judged j = s.ok && r.ok ? judge(s, r, bf) : Judged{};
            char buf[128];
            std::snprintf(buf, sizeof buf, "%d\t%d\t%d\t%.3f\t%.3f\t%.3f", j.shared ? 1 : 0, j.mirrored, j.inliers,
                          j.ag.gradient, j.ag.area, j.ag.ref_area);
            verdicts[i] = buf;
        }
    }
    for (size_t i = 0; i < todo.size(); i++)
        cache[todo[i].first + "\t" + todo[i].second] = verdicts[i];
    std::fprintf(stderr, "shared_content: %zu pairs, %zu judged now (%zu pictures, %.0f s), %zu from the cache\n",
                 pairs.size(), todo.size(), names.size(), now_s() - t0, pairs.size() - todo.size());

    if (!cache_path.empty()) {
        std::string tmp = cache_path + ".tmp";
        FILE *f = std::fopen(tmp.c_str(), "w");
        if (!f)
            die("shared_content: cannot write " + tmp);
        std::fprintf(f, "# %s\n", kRule);
        for (const auto &kv : cache)
            std::fprintf(f, "%s\t%s\n", kv.first.c_str(), kv.second.c_str());
        if (std::fclose(f) != 0 || std::rename(tmp.c_str(), cache_path.c_str()) != 0)
            die("shared_content: cannot write " + cache_path);
    }
    FILE *f = std::fopen(pos[2].c_str(), "w");
    if (!f)
        die("shared_content: cannot write " + pos[2]);
    std::fprintf(f, "source\treference\tmirrored\tinliers\tagreement\tarea\treference_area\n");
    size_t nshared = 0;
    for (const auto &p : pairs) {
        auto it = cache.find(p.first + "\t" + p.second);
        if (it == cache.end() || it->second.compare(0, 2, "1\t") != 0)
            continue;
        std::fprintf(f, "%s\t%s\t%s\n", p.first.c_str(), p.second.c_str(), it->second.c_str() + 2);
        nshared++;
    }
    if (std::fclose(f) != 0)
        die("shared_content: write error on " + pos[2]);
    std::fprintf(stderr, "shared_content: %zu of %zu pairs share content\n", nshared, pairs.size());
    vips_shutdown();
    return 0;
}
