#include "progress.hpp"

#include <cstdio>

namespace blksnap::cli {

std::string human_bytes(std::uint64_t bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024)
        return std::to_string(bytes) + " B";
    double v = static_cast<double>(bytes);
    unsigned u = 0;
    while (v >= 1024 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f %s", v, units[u]);
    return text;
}

std::string clock_text(std::uint64_t seconds) {
    char text[32];
    if (seconds >= 3600)
        std::snprintf(
            text, sizeof(text), "%llu:%02u:%02u", static_cast<unsigned long long>(seconds / 3600),
            static_cast<unsigned>(seconds / 60 % 60), static_cast<unsigned>(seconds % 60));
    else
        std::snprintf(text, sizeof(text), "%u:%02u", static_cast<unsigned>(seconds / 60),
                      static_cast<unsigned>(seconds % 60));
    return text;
}

std::string ProgressBar::line(const std::string& label, std::uint64_t done, std::uint64_t total,
                              double seconds) {
    constexpr int width = 30;
    const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::string text = label + " [" + bar + "] " + std::to_string(static_cast<int>(frac * 100)) +
                       "% " + human_bytes(done) + "/" + human_bytes(total);
    if (seconds > 0 && done > 0) {
        const double rate = static_cast<double>(done) / seconds;
        text += " " + human_bytes(static_cast<std::uint64_t>(rate)) + "/s ETA " +
                clock_text(static_cast<std::uint64_t>(static_cast<double>(total - done) / rate));
    }
    return text;
}

void ProgressBar::start(const std::string& label, std::uint64_t total) {
    label_ = label;
    total_ = total;
    start_ = Clock::now();
    last_ = {};
    update(0);
}

void ProgressBar::update(std::uint64_t done) {
    if (!enabled_)
        return;
    const auto now = Clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(250))
        return;
    last_ = now;
    drawn_ = true;
    out_ << "\r\033[K"
         << line(label_, done, total_, std::chrono::duration<double>(now - start_).count())
         << std::flush;
}

void ProgressBar::clear() {
    if (!drawn_)
        return;
    out_ << "\r\033[K" << std::flush;
    drawn_ = false;
}

} // namespace blksnap::cli
