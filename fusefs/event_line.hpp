// The text of one line of an events file.
#pragma once

#include <blksnap/backend.hpp>

#include <string>

namespace blksnapfs {

// "corrupted dev=8:16 err=-28\n" for a corrupted event; other codes give
// "unknown-CODE\n" (the name from blksnap::Event::name()).
std::string event_line(const blksnap::Event& event);

} // namespace blksnapfs
