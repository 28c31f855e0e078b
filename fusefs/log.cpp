#include "log.hpp"

#include <cstdio>
#include <mutex>

namespace blksnapfs {

namespace {

struct LogState {
    std::mutex mutex;
    LogTarget target = LogTarget::stderr_only;
    bool opened = false;
    LogSink capture;
};

LogState& state() {
    static LogState s;
    return s;
}

const char* level(int priority) {
    return priority == LOG_WARNING ? "warning: " : "";
}

} // namespace

void log_to(LogTarget target) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.target = target;
    if (target == LogTarget::syslog_only && !s.opened) {
        // Connects now: the daemon may chroot or lose /dev/log later.
        ::openlog("blksnapfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        s.opened = true;
    }
}

void log(int priority, const std::string& message) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    if (s.capture) {
        s.capture(priority, message);
        return;
    }
    if (s.target == LogTarget::syslog_only)
        ::syslog(priority, "%s", message.c_str());
    else
        std::fprintf(stderr, "blksnapfs: %s%s\n", level(priority), message.c_str());
}

void log_capture(LogSink sink) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.capture = std::move(sink);
}

} // namespace blksnapfs
