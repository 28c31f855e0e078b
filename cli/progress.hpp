// A one-line progress bar with rate and ETA for a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace blksnap::cli {

// "64.0 MiB", "512 B": a byte count for people.
std::string human_bytes(std::uint64_t bytes);
// "1:02:03", "2:03": seconds as [hours:]minutes:seconds.
std::string clock_text(std::uint64_t seconds);

class ProgressBar {
public:
    // Draws on OUT only when ENABLED (a terminal).
    ProgressBar(std::ostream& out, bool enabled) : out_(out), enabled_(enabled) {}
    ~ProgressBar() { clear(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // Starts a new task of TOTAL bytes named LABEL.
    void start(const std::string& label, std::uint64_t total);
    // DONE bytes of the task are done; redraws at most every 0.25 s.
    void update(std::uint64_t done);
    // Erases the line.
    void clear();

    // The bar's text for DONE of TOTAL bytes after SECONDS.
    static std::string line(const std::string& label, std::uint64_t done, std::uint64_t total,
                            double seconds);

private:
    using Clock = std::chrono::steady_clock;
    std::ostream& out_;
    bool enabled_;
    bool drawn_ = false;
    std::string label_;
    std::uint64_t total_ = 0;
    Clock::time_point start_, last_;
};

} // namespace blksnap::cli
