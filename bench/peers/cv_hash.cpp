// cv_hash.cpp — benchmark peer: OpenCV img_hash PHash (64 bits) or BlockMeanHash mode 0 (256 bits), brute-force top-K by Hamming distance.
//
// usage: cv_hash --algo phash|blockmean DATA_DIR REFS.txt QUERY_DIR OUT_PREDICTIONS.csv [OUT_TIMING.json]
//                [--top K] [--threads N]
// REFS.txt lists the reference images, one path per line relative to DATA_DIR (for example corpus/x.png);
// that relative path is what the predictions name. Every image file in QUERY_DIR is a query.
// Score = 1 - d / nbits. Default decision threshold 0.875 (d <= 8 of 64, d <= 32 of 256: 12.5% of the bits,
// close to PDQ's 31/256), recorded in the timing file for the benchmark's FPR column.
#include "common.hpp"

#include <omp.h>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/img_hash.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdint>

using namespace bench;

namespace {

struct Hasher {
    cv::Ptr<cv::img_hash::ImgHashBase> h;
    explicit Hasher(const std::string &algo)
    {
        if (algo == "phash")
            h = cv::img_hash::PHash::create();
        else
            h = cv::img_hash::BlockMeanHash::create(cv::img_hash::BLOCK_MEAN_HASH_MODE_0);
    }
    // Returns false when the image cannot be read.
    bool hash(const std::string &path, std::vector<uint8_t> &out)
    {
        cv::Mat img = cv::imread(path, cv::IMREAD_COLOR);
        if (img.empty())
            return false;
        cv::Mat code;
        h->compute(img, code);
        out.assign(code.ptr<uint8_t>(), code.ptr<uint8_t>() + code.total() * code.elemSize());
        return true;
    }
};

inline int hamming(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
    int d = 0;
    size_t i = 0;
    for (; i + 8 <= nbytes; i += 8) {
        uint64_t x, y;
        std::memcpy(&x, a + i, 8);
        std::memcpy(&y, b + i, 8);
        d += __builtin_popcountll(x ^ y);
    }
    for (; i < nbytes; i++)
        d += __builtin_popcount((unsigned)(a[i] ^ b[i]));
    return d;
}

} // namespace

int main(int argc, char **argv)
{
    std::string algo;
    std::vector<std::string> pos;
    int top = 10, threads = omp_get_max_threads();
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--algo" && i + 1 < argc)
            algo = argv[++i];
        else if (a == "--top" && i + 1 < argc)
            top = std::atoi(argv[++i]);
        else if (a == "--threads" && i + 1 < argc)
            threads = std::atoi(argv[++i]);
        else if (!a.empty() && a[0] == '-')
            die("cv_hash: unknown option " + a);
        else
            pos.push_back(a);
    }
    if ((algo != "phash" && algo != "blockmean") || pos.size() < 4 || pos.size() > 5 || top < 1 || threads < 1)
        die("usage: cv_hash --algo phash|blockmean DATA_DIR REFS.txt QUERY_DIR OUT_PREDICTIONS.csv "
            "[OUT_TIMING.json] [--top K] [--threads N]");
    const std::string data = pos[0], qdir = pos[2], out = pos[3], timing = pos.size() > 4 ? pos[4] : "";
    const std::vector<std::string> refs = read_lines(pos[1]);
    const std::vector<std::string> queries = list_images(qdir);
    cv::setNumThreads(1); // parallelism is over images
    omp_set_num_threads(threads);
    const int nbits = algo == "phash" ? 64 : 256;
    const size_t nbytes = (size_t)nbits / 8;

    // Index: hash every reference.
    double t0 = now_s();
    std::vector<uint8_t> codes(refs.size() * nbytes);
    std::vector<char> ok(refs.size());
#pragma omp parallel
    {
        Hasher h(algo);
        std::vector<uint8_t> c;
#pragma omp for schedule(dynamic, 4)
        for (long i = 0; i < (long)refs.size(); i++) {
            ok[i] = h.hash(data + "/" + refs[i], c) && c.size() == nbytes;
            if (ok[i])
                std::memcpy(&codes[i * nbytes], c.data(), nbytes);
        }
    }
    double t_index = now_s() - t0;
    size_t ref_fail = 0;
    for (char o : ok)
        ref_fail += !o;

    // Queries: hash, then brute-force scan, keep the top K.
    std::vector<std::vector<Prediction>> per(queries.size());
    std::vector<double> lat(queries.size()), t_hash(queries.size()), t_search(queries.size());
    size_t q_fail = 0;
    t0 = now_s();
#pragma omp parallel reduction(+ : q_fail)
    {
        Hasher h(algo);
        std::vector<uint8_t> c;
        std::vector<std::pair<int, int>> cand; // (distance, ref)
#pragma omp for schedule(dynamic, 4)
        for (long qi = 0; qi < (long)queries.size(); qi++) {
            double a = now_s();
            if (!h.hash(qdir + "/" + queries[qi], c) || c.size() != nbytes) {
                q_fail++;
                lat[qi] = now_s() - a;
                continue;
            }
            double b = now_s();
            cand.clear();
            for (size_t r = 0; r < refs.size(); r++)
                if (ok[r])
                    cand.emplace_back(hamming(c.data(), &codes[r * nbytes], nbytes), (int)r);
            size_t k = std::min(cand.size(), (size_t)top);
            std::partial_sort(cand.begin(), cand.begin() + (long)k, cand.end());
            for (size_t j = 0; j < k; j++)
                per[qi].push_back({queries[qi], refs[cand[j].second], 1.0 - (double)cand[j].first / nbits});
            double e = now_s();
            t_hash[qi] = b - a;
            t_search[qi] = e - b;
            lat[qi] = e - a;
        }
    }
    double t_query = now_s() - t0;
    write_predictions(out, per);

    std::fprintf(stderr,
                 "cv_hash %s: %zu refs hashed in %.2f s (%.1f img/s), %zu queries in %.2f s (%.1f img/s), "
                 "%d threads, %zu+%zu unreadable\n",
                 algo.c_str(), refs.size(), t_index, refs.size() / t_index, queries.size(), t_query,
                 queries.size() / t_query, threads, ref_fail, q_fail);
    if (!timing.empty()) {
        Json j;
        j.str("method", algo == "phash" ? "opencv-phash" : "opencv-blockmean")
            .str("description", algo == "phash" ? "OpenCV img_hash PHash 64-bit, brute-force Hamming top-K"
                                                : "OpenCV img_hash BlockMeanHash mode 0 (256-bit), brute-force "
                                                  "Hamming top-K")
            .num("threshold", 0.875)
            .num("threads", threads)
            .num("top_k", top)
            .num("n_refs", (double)refs.size())
            .num("n_queries", (double)queries.size())
            .num("unreadable_refs", (double)ref_fail)
            .num("unreadable_queries", (double)q_fail)
            .num("index_seconds", t_index)
            .num("index_images_per_s", refs.size() / t_index)
            .num("query_seconds", t_query)
            .num("query_images_per_s", queries.size() / t_query)
            .obj("latency", latency_json(lat))
            .obj("breakdown", Json().obj("decode_hash", latency_json(t_hash)).obj("search", latency_json(t_search)));
        j.write(timing);
    }
    return 0;
}
