// faiss_search.cpp — search-speed peer: FAISS IndexBinaryFlat / IndexBinaryMultiHash range search over 256-bit codes (8 dihedral variants per query).
//
// usage: faiss_search --codes C.codes --queries Q.queries --index flat|mhash|scan [--radius 31] [--threads N]
//                     [--batch-threads N] [--variant0] [--mode single|batch|both] [--repeat R] [--out PAIRS.txt]
//                     [--json OUT.json]
//
// C.codes: N x 32 bytes; Q.queries: Q x 8 x 32 bytes (bench/gen_codes.c writes both).
// Index: IndexBinaryFlat(256) or IndexBinaryMultiHash(256, nhash 16, b 16) with nflip = radius / 16, as
// python-threatexchange's PDQ matcher does (exact for radius <= 31: some 16-bit chunk differs by <= 1 bit).
// FAISS range_search keeps distances strictly below its radius argument, so radius + 1 is passed.
// single: one range_search call per query (its 8 variants, or variant 0 alone), timed one by one: p50/p99.
// batch:  one range_search call for all queries at once: queries/s.
// Threads: --threads N for both modes; --batch-threads N overrides it for batch mode (so that one process, one
// build, can time single queries at 1 thread and batches at all cores).
// --repeat R: each mode runs R times on the same index; queries/s is the median over the runs and the
// latency percentiles are over all R x Q single-query timings.
// A query's result = every code within radius of any of its variants, at the smallest such distance.
// PAIRS.txt: "query id distance" lines sorted by (query, id), for cross-checking other engines.
// Memory: VmRSS and VmHWM from /proc/self/status before and after the build.
// --index scan is not FAISS: a plain xor + hardware-popcount linear scan written here (OpenMP over codes in
// single mode, over queries in batch mode), as a yardstick. Debian's libfaiss is built for baseline x86-64,
// so its popcounts go through libgcc's __popcountdi2; the scan shows what native popcount gives.
#include "common.hpp"

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHash.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <omp.h>

#include <cstdint>
#include <map>
#include <memory>

using namespace bench;

namespace {

std::vector<uint8_t> read_all(const std::string &path)
{
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f)
        die("faiss_search: cannot open " + path);
    std::vector<uint8_t> v;
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        v.insert(v.end(), buf, buf + n);
    std::fclose(f);
    return v;
}

// Collect (query, id) -> min distance from a range search result; rows map to queries via row / per.
void collect(const faiss::RangeSearchResult &res, size_t first_query, int per,
             std::vector<std::vector<std::pair<int64_t, int>>> &out)
{
    for (size_t r = 0; r < res.nq; r++) {
        auto &v = out[first_query + r / (size_t)per];
        for (size_t k = res.lims[r]; k < res.lims[r + 1]; k++)
            v.emplace_back(res.labels[k], (int)res.distances[k]);
    }
}

void finish(std::vector<std::pair<int64_t, int>> &v)
{
    std::sort(v.begin(), v.end());
    size_t w = 0;
    for (size_t i = 0; i < v.size(); i++)
        if (w == 0 || v[w - 1].first != v[i].first)
            v[w++] = v[i];
    v.resize(w); // sorted by (id, distance): the first per id is the smallest distance
}

#if defined(__x86_64__) || defined(__i386__)
#define SCAN_TARGET __attribute__((target("popcnt")))
#else
#define SCAN_TARGET
#endif

SCAN_TARGET inline int ham256(const uint8_t *a, const uint8_t *b)
{
    uint64_t x[4], y[4];
    std::memcpy(x, a, 32);
    std::memcpy(y, b, 32);
    return __builtin_popcountll(x[0] ^ y[0]) + __builtin_popcountll(x[1] ^ y[1]) +
           __builtin_popcountll(x[2] ^ y[2]) + __builtin_popcountll(x[3] ^ y[3]);
}

// Linear scan of codes [lo, hi) for the nv query vectors at q; appends (id, d) with d <= radius.
SCAN_TARGET void scan_range(const uint8_t *codes, size_t lo, size_t hi, const uint8_t *q, int nv, int radius,
                            std::vector<std::pair<int64_t, int>> &out)
{
    for (size_t i = lo; i < hi; i++)
        for (int v = 0; v < nv; v++) {
            int d = ham256(codes + i * 32, q + (size_t)v * 32);
            if (d <= radius)
                out.emplace_back((int64_t)i, d);
        }
}

} // namespace

int main(int argc, char **argv)
{
    std::string codes_path, queries_path, index = "flat", mode = "both", out, json;
    int radius = 31, threads = omp_get_max_threads(), batch_threads = 0, repeat = 1;
    bool variant0 = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc)
                die("faiss_search: " + a + " needs a value");
            return argv[++i];
        };
        if (a == "--codes")
            codes_path = val();
        else if (a == "--queries")
            queries_path = val();
        else if (a == "--index")
            index = val();
        else if (a == "--radius")
            radius = std::atoi(val().c_str());
        else if (a == "--threads")
            threads = std::atoi(val().c_str());
        else if (a == "--batch-threads")
            batch_threads = std::atoi(val().c_str());
        else if (a == "--variant0")
            variant0 = true;
        else if (a == "--repeat")
            repeat = std::atoi(val().c_str());
        else if (a == "--mode")
            mode = val();
        else if (a == "--out")
            out = val();
        else if (a == "--json")
            json = val();
        else
            die("faiss_search: unknown argument " + a);
    }
    if (codes_path.empty() || queries_path.empty() || (index != "flat" && index != "mhash" && index != "scan") || radius < 0 ||
        radius > 255 || threads < 1 || batch_threads < 0 || repeat < 1 || (mode != "single" && mode != "batch" && mode != "both"))
        die("usage: faiss_search --codes C.codes --queries Q.queries --index flat|mhash|scan [--radius 31] "
            "[--threads N] [--batch-threads N] [--variant0] [--mode single|batch|both] [--repeat R] [--out PAIRS.txt] "
            "[--json OUT.json]");
    if (batch_threads == 0)
        batch_threads = threads;
    omp_set_num_threads(threads);
    std::vector<uint8_t> codes = read_all(codes_path), qs = read_all(queries_path);
    if (codes.size() % 32 || qs.size() % 256)
        die("faiss_search: file sizes must be multiples of 32 (codes) and 256 (queries)");
    const size_t n = codes.size() / 32, nq = qs.size() / 256;
    const int per = variant0 ? 1 : 8;
    // Query vectors laid out contiguously: with --variant0 keep only the first 32 bytes of each query.
    std::vector<uint8_t> qv;
    if (variant0) {
        qv.resize(nq * 32);
        for (size_t j = 0; j < nq; j++)
            std::memcpy(&qv[j * 32], &qs[j * 256], 32);
    } else
        qv = qs;

    long rss_before = proc_status_kb("VmRSS");
    double t0 = now_s();
    std::unique_ptr<faiss::IndexBinary> idx;
    if (index == "scan") {
        // nothing to build: the codes array is the index
    } else if (index == "flat") {
        idx.reset(new faiss::IndexBinaryFlat(256));
    } else {
        auto *mh = new faiss::IndexBinaryMultiHash(256, 16, 16);
        mh->nflip = radius / 16;
        idx.reset(mh);
    }
    if (idx)
        idx->add((faiss::IndexBinary::idx_t)n, codes.data());
    double t_build = now_s() - t0;
    long rss_after = proc_status_kb("VmRSS"), hwm_after_build = proc_status_kb("VmHWM");
    const float frad = (float)(radius + 1); // strict <

    std::vector<std::vector<std::pair<int64_t, int>>> res(nq);
    Json j;
    j.str("engine", index == "scan"   ? "linear scan (xor + popcnt, bench-local)"
                    : index == "flat" ? "faiss IndexBinaryFlat"
                                      : "faiss IndexBinaryMultiHash(16x16)")
        .str("index", index)
        .num("n_codes", (double)n)
        .num("n_queries", (double)nq)
        .num("variants", per)
        .num("radius", radius)
        .num("threads", threads)
        .num("repeat", repeat)
        .num("build_seconds", t_build)
        .num("rss_before_build_kb", (double)rss_before)
        .num("rss_after_build_kb", (double)rss_after)
        .num("hwm_after_build_kb", (double)hwm_after_build);
    if (index == "mhash")
        j.num("nflip", radius / 16);

    if (mode == "single" || mode == "both") {
        std::vector<double> us, qps;
        for (int rep = 0; rep < repeat; rep++) {
            double a = now_s();
            for (size_t q = 0; q < nq; q++) {
                double s = now_s();
                if (!idx) {
                    std::vector<std::pair<int64_t, int>> found;
#pragma omp parallel
                    {
                        std::vector<std::pair<int64_t, int>> mine;
                        int t = omp_get_thread_num(), nt = omp_get_num_threads();
                        scan_range(codes.data(), n * (size_t)t / (size_t)nt, n * (size_t)(t + 1) / (size_t)nt,
                                   &qv[q * 32 * per], per, radius, mine);
#pragma omp critical
                        found.insert(found.end(), mine.begin(), mine.end());
                    }
                    us.push_back((now_s() - s) * 1e6);
                    if (mode == "single" && rep == 0)
                        res[q] = std::move(found);
                    continue;
                }
                faiss::RangeSearchResult r(per);
                idx->range_search(per, &qv[q * 32 * per], frad, &r);
                us.push_back((now_s() - s) * 1e6);
                if (mode == "single" && rep == 0)
                    collect(r, q, per, res);
            }
            qps.push_back(nq / (now_s() - a));
        }
        j.obj("single", Json()
                            .num("queries_per_s", percentile(qps, 50))
                            .num("mean_us", mean(us))
                            .num("p50_us", percentile(us, 50))
                            .num("p99_us", percentile(us, 99)));
        std::fprintf(stderr, "faiss_search %s n=%zu: single %.1f q/s, p50 %.1f us, p99 %.1f us\n", index.c_str(), n,
                     percentile(qps, 50), percentile(us, 50), percentile(us, 99));
    }
    if (mode == "batch" || mode == "both") {
        omp_set_num_threads(batch_threads);
        std::vector<double> qps;
        for (int rep = 0; rep < repeat; rep++) {
            for (auto &v : res)
                v.clear();
            double a = now_s();
            if (!idx) {
#pragma omp parallel for schedule(dynamic, 4)
                for (long q = 0; q < (long)nq; q++)
                    scan_range(codes.data(), 0, n, &qv[(size_t)q * 32 * per], per, radius, res[q]);
            } else {
                faiss::RangeSearchResult r(nq * per);
                idx->range_search((faiss::IndexBinary::idx_t)(nq * per), qv.data(), frad, &r);
                collect(r, 0, per, res);
            }
            qps.push_back(nq / (now_s() - a));
        }
        j.obj("batch", Json().num("queries_per_s", percentile(qps, 50)).num("threads", batch_threads));
        std::fprintf(stderr, "faiss_search %s n=%zu: batch %.1f q/s\n", index.c_str(), n, percentile(qps, 50));
    }
    size_t pairs = 0;
    for (auto &v : res) {
        finish(v);
        pairs += v.size();
    }
    j.num("result_pairs", (double)pairs).num("hwm_end_kb", (double)proc_status_kb("VmHWM"));
    if (!out.empty()) {
        FILE *f = std::fopen(out.c_str(), "w");
        if (!f)
            die("faiss_search: cannot write " + out);
        for (size_t q = 0; q < nq; q++)
            for (auto &p : res[q])
                std::fprintf(f, "%zu %lld %d\n", q, (long long)p.first, p.second);
        if (std::fclose(f) != 0)
            die("faiss_search: write error on " + out);
    }
    if (!json.empty())
        j.write(json);
    return 0;
}
