#include "args.hpp"

#include <blksnap/uuid.hpp>

#include <charconv>

namespace blksnap::cli {

namespace {

bool parse_u64(std::string_view text, std::uint64_t& value) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

} // namespace

std::optional<SectorRange> parse_range(const std::string& text) {
    const auto colon = text.find(':');
    if (colon == std::string::npos)
        return std::nullopt;
    SectorRange range;
    const std::string_view view(text);
    if (!parse_u64(view.substr(0, colon), range.offset) ||
        !parse_u64(view.substr(colon + 1), range.count) || range.count == 0)
        return std::nullopt;
    return range;
}

const CLI::Validator& uuid_text() {
    static const CLI::Validator v(
        [](const std::string& s) {
            return Uuid::try_parse(s) ? std::string() : "'" + s + "' is not a UUID";
        },
        "UUID");
    return v;
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
    std::string_view digits(text);
    unsigned shift = 0;
    if (!digits.empty()) {
        switch (digits.back()) {
        case 'K':
        case 'k':
            shift = 10;
            break;
        case 'M':
        case 'm':
            shift = 20;
            break;
        case 'G':
        case 'g':
            shift = 30;
            break;
        }
        if (shift)
            digits.remove_suffix(1);
    }
    std::uint64_t value;
    if (!parse_u64(digits, value) || value > (UINT64_MAX >> shift))
        return std::nullopt;
    return value << shift;
}

const CLI::Validator& size_bytes() {
    static const CLI::Validator v(
        [](std::string& s) {
            const auto bytes = parse_size(s);
            if (!bytes)
                return "'" + s + "' is not a size (a decimal number with an optional K, M or G)";
            s = std::to_string(*bytes);
            return std::string();
        },
        "SIZE");
    return v;
}

const CLI::Validator& range_text() {
    static const CLI::Validator v(
        [](const std::string& s) {
            return parse_range(s) ? std::string()
                                  : "'" + s + "' is not SECTOR:COUNT (decimal, COUNT > 0)";
        },
        "SECTOR:COUNT");
    return v;
}

CLI::Option* add_device(CLI::App& cmd, std::string& device) {
    return cmd.add_option("-d,--device", device, "Block device, e.g. /dev/vdb")->required();
}

CLI::Option* add_devices(CLI::App& cmd, std::vector<std::string>& devices) {
    return cmd.add_option("-d,--device", devices, "Block device(s), e.g. /dev/vdb")->required();
}

CLI::Option* add_id(CLI::App& cmd, std::string& id) {
    return cmd.add_option("-i,--id", id, "Snapshot UUID")->required()->check(uuid_text());
}

CLI::Option* add_json(CLI::App& cmd, bool& json) {
    return cmd.add_flag("-j,--json", json, "Print JSON instead of key=value lines");
}

} // namespace blksnap::cli
