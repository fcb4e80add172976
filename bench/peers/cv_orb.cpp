// cv_orb.cpp — benchmark peer: ORB local features + corpus-wide descriptor retrieval + RANSAC homography verification (the usual answer to crops).
//
// usage: cv_orb DATA_DIR REFS.txt QUERY_DIR OUT_PREDICTIONS.csv [OUT_TIMING.json]
//               [--matcher lsh|bf] [--lsh TABLES,KEY,PROBE] [--candidates C] [--threads N] [--max-side 640]
//               [--features 500]
//
// Pipeline (common practice, no tuning on the benchmark):
//  1. extract: imread greyscale, resize (INTER_AREA) so the longer side is <= 640, ORB nfeatures 500.
//  2. retrieve: every query descriptor is matched (k = 2) against ONE matrix holding all reference descriptors,
//     with either a FLANN LSH index (default 8 tables, 20-bit keys, no multi-probe: on 95k corpus descriptors
//     it retrieves as well as 6x16/6x20 with probe 1 or brute force at 1/10 to 1/40 of their time; cbird also
//     indexes ORB with FLANN LSH) or an exact brute-force Hamming matcher (--matcher bf, slow on big corpora).
//     A descriptor votes for the work owning its nearest neighbour when it passes Lowe's ratio test (0.75)
//     or when both neighbours belong to the same work. The C works with most votes are candidates (C = 5).
//  3. verify: per candidate, brute-force Hamming knn (k = 2) query vs that work, ratio test 0.75,
//     findHomography RANSAC (reprojection 5 px); score = number of inliers (0 when fewer than 4 matches).
// Default decision threshold: 15 inliers (recorded in the timing file).
// Parallelism: OpenMP over images (OpenCV's own threading is switched off to avoid oversubscription).
#include "common.hpp"

#include <omp.h>
#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/flann.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <memory>
#include <unordered_map>

using namespace bench;

namespace {

int g_max_side = 640, g_features = 500;

struct Features {
    std::vector<cv::KeyPoint> kp;
    cv::Mat desc; // CV_8U, 32 bytes per row
    bool ok = false;
};

Features extract(const std::string &path, cv::Ptr<cv::ORB> &orb)
{
    Features f;
    cv::Mat img = cv::imread(path, cv::IMREAD_GRAYSCALE);
    if (img.empty())
        return f;
    int longer = std::max(img.cols, img.rows);
    if (longer > g_max_side) {
        double s = (double)g_max_side / longer;
        cv::Mat r;
        cv::resize(img, r, cv::Size(), s, s, cv::INTER_AREA);
        img = r;
    }
    orb->detectAndCompute(img, cv::noArray(), f.kp, f.desc);
    f.ok = true;
    return f;
}

int verify(const Features &q, const Features &r, const cv::BFMatcher &bf)
{
    if (q.desc.rows < 2 || r.desc.rows < 2)
        return 0;
    std::vector<std::vector<cv::DMatch>> m;
    bf.knnMatch(q.desc, r.desc, m, 2);
    std::vector<cv::Point2f> src, dst;
    for (const auto &v : m)
        if (v.size() == 2 && v[0].distance < 0.75f * v[1].distance) {
            src.push_back(q.kp[v[0].queryIdx].pt);
            dst.push_back(r.kp[v[0].trainIdx].pt);
        }
    if (src.size() < 4)
        return 0;
    cv::Mat mask;
    cv::Mat H = cv::findHomography(src, dst, cv::RANSAC, 5.0, mask);
    if (H.empty())
        return 0;
    return cv::countNonZero(mask);
}

} // namespace

int main(int argc, char **argv)
{
    std::vector<std::string> pos;
    std::string matcher = "lsh";
    int ncand = 5, threads = omp_get_max_threads(), tables = 8, key_size = 20, probe = 0;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--matcher" && i + 1 < argc)
            matcher = argv[++i];
        else if (a == "--candidates" && i + 1 < argc)
            ncand = std::atoi(argv[++i]);
        else if (a == "--threads" && i + 1 < argc)
            threads = std::atoi(argv[++i]);
        else if (a == "--max-side" && i + 1 < argc)
            g_max_side = std::atoi(argv[++i]);
        else if (a == "--lsh" && i + 1 < argc) {
            if (std::sscanf(argv[++i], "%d,%d,%d", &tables, &key_size, &probe) != 3)
                die("cv_orb: --lsh TABLES,KEY,PROBE (KEY 0 = from the corpus size)");
        } else if (a == "--features" && i + 1 < argc)
            g_features = std::atoi(argv[++i]);
        else if (!a.empty() && a[0] == '-')
            die("cv_orb: unknown option " + a);
        else
            pos.push_back(a);
    }
    if (pos.size() < 4 || pos.size() > 5 || (matcher != "lsh" && matcher != "bf") || ncand < 1 || threads < 1)
        die("usage: cv_orb DATA_DIR REFS.txt QUERY_DIR OUT_PREDICTIONS.csv [OUT_TIMING.json] [--matcher lsh|bf] "
            "[--lsh TABLES,KEY,PROBE] [--candidates C] [--threads N] [--max-side 640] [--features 500]");
    const std::string data = pos[0], qdir = pos[2], out = pos[3], timing = pos.size() > 4 ? pos[4] : "";
    const std::vector<std::string> refs = read_lines(pos[1]);
    const std::vector<std::string> queries = list_images(qdir);
    cv::setNumThreads(1);
    omp_set_num_threads(threads);

    // ---- Index: extract reference features, concatenate descriptors, build the retrieval structure.
    double t0 = now_s();
    std::vector<Features> rf(refs.size());
#pragma omp parallel
    {
        cv::Ptr<cv::ORB> orb = cv::ORB::create(g_features);
#pragma omp for schedule(dynamic, 4)
        for (long i = 0; i < (long)refs.size(); i++)
            rf[i] = extract(data + "/" + refs[i], orb);
    }
    double t_extract_refs = now_s() - t0;
    size_t ndesc = 0, ref_fail = 0;
    for (const auto &f : rf) {
        ndesc += (size_t)f.desc.rows;
        ref_fail += !f.ok;
    }
    cv::Mat all((int)ndesc, 32, CV_8U);
    std::vector<int> owner(ndesc);
    {
        size_t row = 0;
        for (size_t i = 0; i < rf.size(); i++)
            if (rf[i].desc.rows) {
                rf[i].desc.copyTo(all.rowRange((int)row, (int)row + rf[i].desc.rows));
                std::fill(owner.begin() + (long)row, owner.begin() + (long)row + rf[i].desc.rows, (int)i);
                row += (size_t)rf[i].desc.rows;
            }
    }
    double t1 = now_s();
    std::unique_ptr<cv::flann::Index> lsh;
    if (matcher == "lsh" && ndesc >= 2) {
        if (key_size <= 0) { // about 16 descriptors per bucket on average, bounded to [12, 24] bits
            key_size = (int)std::lround(std::log2((double)ndesc / 16.0));
            key_size = std::max(12, std::min(24, key_size));
        }
        lsh.reset(new cv::flann::Index(all, cv::flann::LshIndexParams(tables, key_size, probe),
                                       cvflann::FLANN_DIST_HAMMING));
    }
    double t_build = now_s() - t1;
    double t_index = now_s() - t0;
    std::fprintf(stderr, "cv_orb: %zu refs, %zu descriptors, extract %.2f s, build %s %.2f s\n", refs.size(), ndesc,
                 t_extract_refs, matcher.c_str(), t_build);

    // ---- Queries.
    std::vector<std::vector<Prediction>> per(queries.size());
    std::vector<double> t_ex(queries.size()), t_re(queries.size()), t_ve(queries.size()), lat(queries.size());
    size_t q_fail = 0;
    t0 = now_s();
#pragma omp parallel reduction(+ : q_fail)
    {
        cv::Ptr<cv::ORB> orb = cv::ORB::create(g_features);
        cv::BFMatcher bf(cv::NORM_HAMMING);
        std::unordered_map<int, int> votes;
#pragma omp for schedule(dynamic, 2)
        for (long qi = 0; qi < (long)queries.size(); qi++) {
            double a = now_s();
            Features q = extract(qdir + "/" + queries[qi], orb);
            double b = now_s();
            t_ex[qi] = b - a;
            if (!q.ok) {
                q_fail++;
                lat[qi] = b - a;
                continue;
            }
            votes.clear();
            if (q.desc.rows > 0 && ndesc >= 2) {
                cv::Mat idx, dist;
                if (lsh) {
                    lsh->knnSearch(q.desc, idx, dist, 2, cv::flann::SearchParams());
                } else {
                    std::vector<std::vector<cv::DMatch>> m;
                    bf.knnMatch(q.desc, all, m, 2);
                    idx = cv::Mat(q.desc.rows, 2, CV_32S, cv::Scalar(-1));
                    dist = cv::Mat(q.desc.rows, 2, CV_32F, cv::Scalar(0));
                    for (size_t i = 0; i < m.size(); i++)
                        for (size_t k = 0; k < m[i].size() && k < 2; k++) {
                            idx.at<int>((int)i, (int)k) = m[i][k].trainIdx;
                            dist.at<float>((int)i, (int)k) = m[i][k].distance;
                        }
                }
                for (int i = 0; i < idx.rows; i++) {
                    int i0 = idx.at<int>(i, 0), i1 = idx.at<int>(i, 1);
                    if (i0 < 0 || (size_t)i0 >= ndesc)
                        continue;
                    // FLANN returns integer Hamming distances in a CV_32S matrix, BF in CV_32F.
                    float d0 = dist.type() == CV_32S ? (float)dist.at<int>(i, 0) : dist.at<float>(i, 0);
                    float d1 = dist.type() == CV_32S ? (float)dist.at<int>(i, 1) : dist.at<float>(i, 1);
                    bool second = i1 >= 0 && (size_t)i1 < ndesc;
                    if (!second || d0 < 0.75f * d1 || owner[i0] == owner[i1])
                        votes[owner[i0]]++;
                }
            }
            std::vector<std::pair<int, int>> ranked; // (-votes, ref)
            for (const auto &kv : votes)
                ranked.emplace_back(-kv.second, kv.first);
            size_t k = std::min(ranked.size(), (size_t)ncand);
            std::partial_sort(ranked.begin(), ranked.begin() + (long)k, ranked.end());
            double c = now_s();
            t_re[qi] = c - b;
            for (size_t j = 0; j < k; j++) {
                int r = ranked[j].second;
                int inl = verify(q, rf[r], bf);
                per[qi].push_back({queries[qi], refs[r], (double)inl});
            }
            double e = now_s();
            t_ve[qi] = e - c;
            lat[qi] = e - a;
        }
    }
    double t_query = now_s() - t0;
    write_predictions(out, per);
    std::fprintf(stderr, "cv_orb: %zu queries in %.2f s (%.1f ms/query wall, mean latency %.1f ms), %d threads\n",
                 queries.size(), t_query, 1e3 * t_query / std::max<size_t>(1, queries.size()), 1e3 * mean(lat),
                 threads);
    if (!timing.empty()) {
        char desc[256];
        std::snprintf(desc, sizeof desc,
                      "ORB %d features, longer side <= %d, %s retrieval (%s), top %d candidates, ratio 0.75, "
                      "RANSAC homography 5 px, score = inliers",
                      g_features, g_max_side, matcher == "lsh" ? "FLANN LSH" : "brute-force Hamming",
                      matcher == "lsh" ? (std::to_string(tables) + " tables, key " + std::to_string(key_size) +
                                                               " bits, multi-probe " + std::to_string(probe))
                                                                  .c_str()
                                       : "exact knn 2",
                      ncand);
        Json j;
        j.str("method", "opencv-orb")
            .str("description", desc)
            .num("threshold", 15)
            .num("threads", threads)
            .num("n_refs", (double)refs.size())
            .num("n_queries", (double)queries.size())
            .num("n_ref_descriptors", (double)ndesc)
            .num("unreadable_refs", (double)ref_fail)
            .num("unreadable_queries", (double)q_fail)
            .num("index_seconds", t_index)
            .num("index_extract_seconds", t_extract_refs)
            .num("index_build_seconds", t_build)
            .num("index_images_per_s", refs.size() / t_index)
            .num("query_seconds", t_query)
            .num("query_images_per_s", queries.size() / t_query)
            .obj("latency", latency_json(lat))
            .obj("breakdown", Json()
                                  .obj("extract", latency_json(t_ex))
                                  .obj("retrieve", latency_json(t_re))
                                  .obj("verify", latency_json(t_ve)));
        j.write(timing);
    }
    return 0;
}
