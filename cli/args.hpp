// Option value types shared by the commands, as CLI11 validators: a bad
// value is a usage error (exit 2).
#pragma once

#include <blksnap/filter.hpp>

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace blksnap::cli {

// "SECTOR:COUNT" with decimal numbers and COUNT > 0.
std::optional<SectorRange> parse_range(const std::string& text);

// Checks that every value is a UUID.
const CLI::Validator& uuid_text();
// "NUMBER[K|M|G]" (decimal, powers of 1024, lower case too) in bytes;
// nullopt when malformed or too large.
std::optional<std::uint64_t> parse_size(const std::string& text);
// Turns a size into its number of bytes, or rejects it.
const CLI::Validator& size_bytes();
// Checks that every value is a SECTOR:COUNT range.
const CLI::Validator& range_text();

// Adds -d/--device: one device, required.
CLI::Option* add_device(CLI::App& cmd, std::string& device);
// Adds -d/--device: one or more devices, required.
CLI::Option* add_devices(CLI::App& cmd, std::vector<std::string>& devices);
// Adds -i/--id: a snapshot UUID, required.
CLI::Option* add_id(CLI::App& cmd, std::string& id);
// Adds -j/--json.
CLI::Option* add_json(CLI::App& cmd, bool& json);

} // namespace blksnap::cli
