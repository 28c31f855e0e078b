#include "readahead.hpp"

#include <fstream>
#include <sstream>

namespace blksnapfs {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            out +=
                static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

} // namespace

std::optional<std::string> mount_device(std::istream& mountinfo, const std::string& mountpoint) {
    std::optional<std::string> found;
    for (std::string line; std::getline(mountinfo, line);) {
        std::istringstream fields(line);
        std::string id, parent, dev, root, point;
        if (fields >> id >> parent >> dev >> root >> point && unescape(point) == mountpoint)
            found = dev;
    }
    return found;
}

bool set_readahead(const std::string& mountpoint, unsigned kb) {
    std::ifstream mountinfo("/proc/self/mountinfo");
    const auto dev = mount_device(mountinfo, mountpoint);
    if (!dev)
        return false;
    std::ofstream knob("/sys/class/bdi/" + *dev + "/read_ahead_kb");
    knob << kb << '\n';
    knob.flush();
    return static_cast<bool>(knob);
}

} // namespace blksnapfs
