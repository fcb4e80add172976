// cv_hash_speed.cpp — hashing-speed peer: OpenCV imread + img_hash::PHash over a folder of JPEGs (full decode or IMREAD_REDUCED_GRAYSCALE_8).
//
// usage: cv_hash_speed DIR --mode full|reduced8 [--threads N] [--repeat R] [--json OUT]
//   full      cv::imread(IMREAD_COLOR) then PHash (what a typical OpenCV user writes)
//   reduced8  cv::imread(IMREAD_REDUCED_GRAYSCALE_8) (libjpeg DCT scaling by 1/8, grey) then PHash
// Threads: OpenMP over files, OpenCV's internal threading off. Prints "images N seconds S images_per_s X".
#include "common.hpp"

#include <omp.h>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/img_hash.hpp>
#include <opencv2/imgcodecs.hpp>

using namespace bench;

int main(int argc, char **argv)
{
    std::string dir, mode, json;
    int threads = omp_get_max_threads(), repeat = 1;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--mode" && i + 1 < argc)
            mode = argv[++i];
        else if (a == "--threads" && i + 1 < argc)
            threads = std::atoi(argv[++i]);
        else if (a == "--repeat" && i + 1 < argc)
            repeat = std::atoi(argv[++i]);
        else if (a == "--json" && i + 1 < argc)
            json = argv[++i];
        else if (!a.empty() && a[0] != '-' && dir.empty())
            dir = a;
        else
            die("cv_hash_speed: bad argument " + a);
    }
    if (dir.empty() || (mode != "full" && mode != "reduced8") || threads < 1 || repeat < 1)
        die("usage: cv_hash_speed DIR --mode full|reduced8 [--threads N] [--repeat R] [--json OUT]");
    std::vector<std::string> files = list_images(dir, true);
    if (files.empty())
        die("cv_hash_speed: no JPEG files in " + dir);
    cv::setNumThreads(1);
    omp_set_num_threads(threads);
    const int flags = mode == "full" ? cv::IMREAD_COLOR : cv::IMREAD_REDUCED_GRAYSCALE_8;
    long failures = 0;
    unsigned long check = 0;
    double t0 = now_s();
    for (int r = 0; r < repeat; r++) {
#pragma omp parallel reduction(+ : failures, check)
        {
            cv::Ptr<cv::img_hash::PHash> h = cv::img_hash::PHash::create();
            cv::Mat code;
#pragma omp for schedule(dynamic, 1)
            for (long i = 0; i < (long)files.size(); i++) {
                cv::Mat img = cv::imread(dir + "/" + files[i], flags);
                if (img.empty()) {
                    failures++;
                    continue;
                }
                h->compute(img, code);
                check += code.at<uint8_t>(0);
            }
        }
    }
    double t = now_s() - t0;
    double ips = (double)files.size() * repeat / t;
    std::printf("mode %s threads %d images %zu repeat %d seconds %.4f images_per_s %.2f failures %ld check %lu\n",
                mode.c_str(), threads, files.size(), repeat, t, ips, failures / repeat, check);
    if (!json.empty()) {
        Json j;
        j.str("mode", mode)
            .num("threads", threads)
            .num("images", (double)files.size())
            .num("repeat", repeat)
            .num("seconds", t)
            .num("images_per_s", ips)
            .num("failures", (double)failures / repeat);
        j.write(json);
    }
    return failures ? 1 : 0;
}
