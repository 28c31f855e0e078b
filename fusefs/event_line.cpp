#include "event_line.hpp"

#include <linux/blksnap.h>

namespace blksnapfs {

std::string event_line(const blksnap::Event& event) {
    std::string line = event.name();
    if (event.code == blksnap_event_code_corrupted)
        line += " dev=" + event.device.str() + " err=" + std::to_string(event.error_code);
    line += '\n';
    return line;
}

} // namespace blksnapfs
