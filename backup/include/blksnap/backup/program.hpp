// Running another program (qemu-img) and waiting for it.
#pragma once

#include <string>
#include <vector>

namespace blksnap::backup {

// Runs ARGV (the program found in PATH) with standard input from /dev/null
// and waits for it. Error when it cannot be started or does not exit with
// 0, saying so with the last line it wrote to standard error; its code is
// EIO, or ENOSPC, EDQUOT, EROFS, EACCES or EPERM where that line names one.
void run_program(const std::vector<std::string>& argv);

} // namespace blksnap::backup
