// The blksnap command line, runnable against any kernel backend.
#pragma once

#include "context.hpp"

#include <ostream>

namespace blksnap::cli {

// Exit status: 0 success, 1 failure, 2 bad usage.
enum Exit { exit_ok = 0, exit_failure = 1, exit_usage = 2 };

// ERR_IS_TTY: ERR is a terminal (progress bars are drawn there).
int run(int argc, const char* const* argv, const BackendFactory& factory, std::ostream& out,
        std::ostream& err, bool err_is_tty = false);

} // namespace blksnap::cli
