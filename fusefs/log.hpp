// The daemon's log: to stderr while it runs in the foreground, to syslog
// (ident "blksnapfs", facility LOG_DAEMON) once it runs in the background.
#pragma once

#include <functional>
#include <string>
#include <syslog.h>

namespace blksnapfs {

enum class LogTarget { stderr_only, syslog_only };

// Where messages go from now on.
void log_to(LogTarget target);

// Logs MESSAGE with PRIORITY (LOG_ERR, LOG_WARNING, LOG_INFO...).
void log(int priority, const std::string& message);

// Unit tests: every message goes to SINK instead (an empty SINK restores
// the target).
using LogSink = std::function<void(int priority, const std::string& message)>;
void log_capture(LogSink sink);

} // namespace blksnapfs
