// Snapshot and generation identifiers.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <linux/blksnap.h>

namespace blksnap {

class Uuid {
public:
    Uuid() = default;
    explicit Uuid(const blksnap_uuid& raw);

    // The usual 36-character text; Error(EINVAL) when the text is not one.
    static Uuid parse(std::string_view text);
    static std::optional<Uuid> try_parse(std::string_view text);

    std::string str() const;
    blksnap_uuid raw() const;
    const std::array<std::uint8_t, UUID_SIZE>& bytes() const { return bytes_; }
    bool is_null() const;

    auto operator<=>(const Uuid&) const = default;

private:
    std::array<std::uint8_t, UUID_SIZE> bytes_{};
};

} // namespace blksnap
