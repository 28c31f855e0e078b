// Snapshot events: decoding and following them.
#pragma once

#include <blksnap/backend.hpp>

#include <chrono>
#include <functional>

namespace blksnap {

Event decode_event(const blksnap_snapshot_event& raw);

// Calls ON_EVENT for each event of snapshot ID until the snapshot is gone
// (returns normally) or ON_EVENT returns false. Waits in steps of STEP, so
// that SHOULD_STOP (if given) is checked at least that often.
void follow_events(KernelBackend& backend, const Uuid& id,
                   const std::function<bool(const Event&)>& on_event,
                   std::chrono::milliseconds step = std::chrono::seconds(1),
                   const std::function<bool()>& should_stop = {});

} // namespace blksnap
