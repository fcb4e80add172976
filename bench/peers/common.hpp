// common.hpp — small helpers shared by the benchmark peer programs (file lists, timing, percentiles, JSON, memory).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

inline double now_s()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] inline void die(const std::string &msg)
{
    std::fprintf(stderr, "%s\n", msg.c_str());
    std::exit(2);
}

inline bool has_image_ext(const std::string &name)
{
    std::string n = name;
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return (char)std::tolower(c); });
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"};
    for (const char *e : ext) {
        size_t l = std::strlen(e);
        if (n.size() > l && n.compare(n.size() - l, l, e) == 0)
            return true;
    }
    return false;
}

inline bool has_jpeg_ext(const std::string &name)
{
    std::string n = name;
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return (char)std::tolower(c); });
    return (n.size() > 4 && n.compare(n.size() - 4, 4, ".jpg") == 0) ||
           (n.size() > 5 && n.compare(n.size() - 5, 5, ".jpeg") == 0);
}

// Image file names (not paths) in dir, sorted.
inline std::vector<std::string> list_images(const std::string &dir, bool jpeg_only = false)
{
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    if (!d)
        die("cannot open directory " + dir);
    while (struct dirent *e = readdir(d)) {
        std::string n = e->d_name;
        if (n.empty() || n[0] == '.')
            continue;
        if (jpeg_only ? has_jpeg_ext(n) : has_image_ext(n))
            out.push_back(n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

// Lines of a text file (one path per line, blank lines skipped).
inline std::vector<std::string> read_lines(const std::string &path)
{
    std::ifstream f(path);
    if (!f)
        die("cannot open " + path);
    std::vector<std::string> out;
    std::string line;
    while (std::getline(f, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
            line.pop_back();
        if (!line.empty())
            out.push_back(line);
    }
    return out;
}

inline double percentile(std::vector<double> v, double p)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    double idx = p / 100.0 * (double)(v.size() - 1);
    size_t lo = (size_t)idx, hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (idx - (double)lo);
}

inline double mean(const std::vector<double> &v)
{
    double s = 0;
    for (double x : v)
        s += x;
    return v.empty() ? 0 : s / (double)v.size();
}

// VmRSS / VmHWM of this process in KiB (from /proc/self/status).
inline long proc_status_kb(const char *key)
{
    FILE *f = std::fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = std::strlen(key);
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = std::atol(line + kl + 1);
            break;
        }
    std::fclose(f);
    return v;
}

inline std::string json_escape(const std::string &s)
{
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            o += '\\';
            o += c;
        } else if ((unsigned char)c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            o += b;
        } else
            o += c;
    }
    return o;
}

// Minimal flat JSON object writer: numbers, strings, and nested raw objects.
class Json {
  public:
    Json &num(const std::string &k, double v)
    {
        char b[64];
        std::snprintf(b, sizeof b, "%.9g", v);
        add(k, b);
        return *this;
    }
    Json &str(const std::string &k, const std::string &v) { return add(k, "\"" + json_escape(v) + "\""); }
    Json &raw(const std::string &k, const std::string &v) { return add(k, v); }
    Json &obj(const std::string &k, const Json &v) { return add(k, v.dump()); }
    std::string dump() const { return "{" + body_ + "}"; }
    void write(const std::string &path) const
    {
        FILE *f = std::fopen(path.c_str(), "w");
        if (!f)
            die("cannot write " + path);
        std::fprintf(f, "%s\n", dump().c_str());
        std::fclose(f);
    }

  private:
    Json &add(const std::string &k, const std::string &v)
    {
        if (!body_.empty())
            body_ += ", ";
        body_ += "\"" + json_escape(k) + "\": " + v;
        return *this;
    }
    std::string body_;
};

// Summary of a list of per-item durations in seconds, as milliseconds.
inline Json latency_json(const std::vector<double> &sec)
{
    std::vector<double> ms(sec.size());
    for (size_t i = 0; i < sec.size(); i++)
        ms[i] = sec[i] * 1e3;
    Json j;
    j.num("mean_ms", mean(ms)).num("p50_ms", percentile(ms, 50)).num("p99_ms", percentile(ms, 99));
    return j;
}

// Writes `query,reference,score` rows; rows is (query, reference, score).
struct Prediction {
    std::string query, reference;
    double score;
};

inline std::string csv_field(const std::string &s)
{
    if (s.find_first_of(",\"\n\r") == std::string::npos)
        return s;
    std::string o = "\"";
    for (char c : s) {
        if (c == '"')
            o += '"';
        o += c;
    }
    return o + "\"";
}

/* Writes every query's predictions (per_query[i]: those of query i, filled by its own thread), in
 * query order. */
inline void write_predictions(const std::string &path, const std::vector<std::vector<Prediction>> &per_query)
{
    FILE *f = std::fopen(path.c_str(), "w");
    if (!f)
        die("cannot write " + path);
    std::fprintf(f, "query,reference,score\n");
    for (const auto &rows : per_query)
        for (const auto &r : rows)
            std::fprintf(f, "%s,%s,%.6f\n", csv_field(r.query).c_str(), csv_field(r.reference).c_str(), r.score);
    if (std::fclose(f) != 0)
        die("write error on " + path);
}

} // namespace bench
