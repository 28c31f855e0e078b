// Reading an events file: wait for the snapshot's next event.
#pragma once

#include "source.hpp"

#include <functional>
#include <optional>
#include <string>

namespace blksnapfs {

// The line of the next event of snapshot ID; nullopt once the snapshot is
// gone (end of file). Waits in steps of STEP_MS and throws
// blksnap::Error(EINTR) when SHOULD_STOP returns true between them.
std::optional<std::string> next_event_line(Source& source, const blksnap::Uuid& id,
                                           const std::function<bool()>& should_stop,
                                           std::uint32_t step_ms = 250);

} // namespace blksnapfs
