// Errors of the blksnap libraries: an errno plus the context it happened in.
#pragma once

#include <stdexcept>
#include <string>

namespace blksnap {

// An operation failed with an errno. what() reads "CONTEXT: REASON", where
// CONTEXT names the operation and its object ("attach /dev/vdb") and REASON
// is the errno text, or a more precise explanation when one is given,
// followed by the errno text in parentheses unless the explanation already
// holds it ("...: cannot write to /x (Read-only file system)"). Without a
// CONTEXT, the REASON alone is the message ("blksnap module not loaded").
class Error : public std::runtime_error {
public:
    Error(int code, const std::string& context);
    Error(int code, const std::string& context, const std::string& reason);

    int code() const noexcept { return code_; }

private:
    int code_;
};

// Throws Error with the current errno.
[[noreturn]] void throw_errno(const std::string& context);

// "OP OBJECT", the usual context text.
std::string context(const std::string& op, const std::string& object);

} // namespace blksnap
