// features_speed.cpp — provscan local features vs OpenCV ORB + BFMatcher on the same images, one thread, medians and ratios.
//
// usage: features_speed DIR [--max-images N] [--features 500] [--repeat R]
// Every image is decoded once by OpenCV, turned grey and resized so its longer side is 640 (INTER_AREA);
// both libraries get exactly those pixels. Extraction: ORB detectAndCompute (500 features, defaults) vs
// ps_features_extract. Matching, per pair of consecutive images and per image with a 15-degree rotated
// and 0.8x copy of itself: OpenCV BFMatcher(NORM_HAMMING).knnMatch(k=2) vs provscan's descriptor stage
// (top-2 of the query and its mirror within vocabulary cells, ps_match_query_top2), the whole match
// of a query prepared once, as a scan does for its candidates (ps_features_match_prepared: both
// readings + geometric verification), and the one-shot ps_features_match (preparing the query too). Built only with -DPROVSCAN_BUILD_BENCH=ON; OpenCV is never linked
// into provscan itself.
#include <opencv2/core.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <string>
#include <vector>

extern "C" {
#include "cpu/kernels.h"
#include "decode/decode.h"
#include "features/features.h"
}

static double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static double median(std::vector<double> v)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static provscan_image *wrap(const cv::Mat &g)
{
    provscan_image *img = nullptr;
    provscan_image_from_pixels(g.data, g.cols, g.rows, 1, g.step, &img);
    return img;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIR [--max-images N] [--features 500] [--repeat R]\n", argv[0]);
        return 2;
    }
    int maxi = 40, nf = 500, rep = 5;
    for (int a = 2; a + 1 < argc; a += 2) {
        if (!std::strcmp(argv[a], "--max-images"))
            maxi = std::atoi(argv[a + 1]);
        else if (!std::strcmp(argv[a], "--features"))
            nf = std::atoi(argv[a + 1]);
        else if (!std::strcmp(argv[a], "--repeat"))
            rep = std::atoi(argv[a + 1]);
    }
    cv::setNumThreads(1);
    provscan_init(nullptr);
    std::vector<std::string> files;
    if (DIR *d = opendir(argv[1])) {
        while (dirent *e = readdir(d)) {
            std::string n = e->d_name;
            if (n.size() > 4 && (n.find(".jpg") != std::string::npos || n.find(".png") != std::string::npos))
                files.push_back(std::string(argv[1]) + "/" + n);
        }
        closedir(d);
    }
    std::sort(files.begin(), files.end());
    std::vector<cv::Mat> imgs;
    for (auto &f : files) {
        if ((int)imgs.size() >= maxi)
            break;
        cv::Mat m = cv::imread(f, cv::IMREAD_GRAYSCALE);
        if (m.empty())
            continue;
        double s = 640.0 / std::max(m.cols, m.rows);
        cv::Mat g;
        cv::resize(m, g, cv::Size((int)std::lround(m.cols * s), (int)std::lround(m.rows * s)), 0, 0, cv::INTER_AREA);
        imgs.push_back(g);
    }
    if (imgs.size() < 2) {
        std::fprintf(stderr, "features_speed: need at least 2 images in %s\n", argv[1]);
        return 1;
    }
    auto orb = cv::ORB::create(nf);
    ps_feature_params prm;
    ps_feature_params_default(&prm);
    prm.max_features = nf;
    std::vector<double> t_orb, t_ps;
    std::vector<cv::Mat> cvd(imgs.size());
    std::vector<ps_features> psf(imgs.size());
    double kp_orb = 0, kp_ps = 0;
    for (size_t i = 0; i < imgs.size(); i++) {
        provscan_image *pi = wrap(imgs[i]);
        std::vector<double> a, b;
        for (int r = 0; r < rep; r++) {
            std::vector<cv::KeyPoint> kps;
            cv::Mat d;
            double t0 = now_ms();
            orb->detectAndCompute(imgs[i], cv::noArray(), kps, d);
            double t1 = now_ms();
            ps_features f;
            ps_features_extract(pi, nullptr, &prm, &f);
            double t2 = now_ms();
            a.push_back(t1 - t0);
            b.push_back(t2 - t1);
            if (r == 0) {
                cvd[i] = d;
                psf[i] = f;
                kp_orb += kps.size();
                kp_ps += f.n;
            } else {
                ps_features_free(&f);
            }
        }
        t_orb.push_back(median(a));
        t_ps.push_back(median(b));
        provscan_image_free(pi);
    }
    // Matching pairs: consecutive (unrelated) images, and each image vs a rotated, scaled copy.
    std::vector<double> m_bf, m_top2, m_full, m_full_true, m_once;
    int found = 0;
    for (size_t i = 0; i < imgs.size(); i++) {
        cv::Mat rot = cv::getRotationMatrix2D(cv::Point2f(imgs[i].cols / 2.f, imgs[i].rows / 2.f), 15, 0.8);
        cv::Mat w;
        cv::warpAffine(imgs[i], w, rot, imgs[i].size());
        provscan_image *pw = wrap(w);
        ps_features fw;
        ps_features_extract(pw, nullptr, &prm, &fw);
        provscan_image_free(pw);
        for (int pass = 0; pass < 2; pass++) {
            const ps_features &q = psf[i], &t = pass ? fw : psf[(i + 1) % imgs.size()];
            cv::Mat dq = cv::Mat(q.n, 32, CV_8U, q.desc), dt = cv::Mat(t.n, 32, CV_8U, t.desc);
            std::vector<double> a, b, c, e;
            std::vector<ps_top2> out((size_t)q.n * 2);
            ps_match_query *mq = nullptr;
            if (ps_match_query_prepare(&q, &mq) != PROVSCAN_OK) {
                std::fprintf(stderr, "features_speed: out of memory\n");
                return 1;
            }
            for (int r = 0; r < rep; r++) {
                cv::BFMatcher bf(cv::NORM_HAMMING);
                std::vector<std::vector<cv::DMatch>> km;
                double t0 = now_ms();
                bf.knnMatch(dq, dt, km, 2);
                double t1 = now_ms();
                ps_match_query_top2(mq, &t, PS_READ_BOTH, out.data());
                double t2 = now_ms();
                ps_geo_match gm;
                ps_features_match_prepared(mq, &t, PS_READ_BOTH, &gm);
                double t3 = now_ms();
                if (r == 0 && pass == 1 && gm.inliers >= PS_MATCH_INLIERS_COPY)
                    found++;
                ps_geo_match_free(&gm);
                ps_features_match(&q, &t, &gm);
                double t4 = now_ms();
                ps_geo_match_free(&gm);
                a.push_back(t1 - t0);
                b.push_back(t2 - t1);
                c.push_back(t3 - t2);
                e.push_back(t4 - t3);
            }
            ps_match_query_free(mq);
            m_bf.push_back(median(a));
            m_top2.push_back(median(b));
            m_once.push_back(median(e));
            (pass ? m_full_true : m_full).push_back(median(c));
        }
        ps_features_free(&fw);
    }
    std::vector<double> m_all = m_full;
    m_all.insert(m_all.end(), m_full_true.begin(), m_full_true.end());
    double eo = median(t_orb), ep = median(t_ps), mb = median(m_bf), mt = median(m_top2), mf = median(m_all);
    std::printf("images: %zu from %s, grey, longer side 640; one thread; SIMD set %s; medians of %d runs each\n",
                imgs.size(), argv[1], provscan_simd_path(), rep);
    std::printf("extract  OpenCV ORB (%d):             %7.3f ms/image  (%.0f keypoints on average)\n", nf, eo,
                kp_orb / imgs.size());
    std::printf("extract  provscan ps_features_extract: %7.3f ms/image  (%.0f keypoints)   ORB / provscan = %.2fx\n",
                ep, kp_ps / imgs.size(), eo / ep);
    std::printf("match    OpenCV BFMatcher knnMatch k=2: %7.3f ms/pair\n", mb);
    double mo = median(m_once);
    std::printf("match    provscan top-2, query + mirror: %7.3f ms/pair   BF / provscan = %.1fx\n", mt, mb / mt);
    std::printf("match    provscan prepared query:        %7.3f ms/pair (unrelated %.3f, true %.3f)   BF / provscan = "
                "%.1fx\n", mf, median(m_full), median(m_full_true), mb / mf);
    std::printf("match    provscan ps_features_match:     %7.3f ms/pair (one-shot, query prepared too)   BF / provscan = "
                "%.1fx\n", mo, mb / mo);
    std::printf("verified rotated+scaled copies: %d of %zu\n", found, imgs.size());
    for (auto &f : psf)
        ps_features_free(&f);
    return 0;
}
