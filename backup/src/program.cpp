#include <blksnap/backup/program.hpp>
#include <blksnap/error.hpp>
#include <blksnap/unique_fd.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace blksnap::backup {

namespace {

std::string command_line(const std::vector<std::string>& argv) {
    std::string text;
    for (const auto& a : argv)
        text += (text.empty() ? "" : " ") + a;
    return text;
}

// The last non-empty line of TEXT.
std::string last_line(std::string text) {
    while (!text.empty() && text.back() == '\n')
        text.pop_back();
    const auto nl = text.rfind('\n');
    return nl == std::string::npos ? text : text.substr(nl + 1);
}

class SpawnActions {
public:
    SpawnActions() { ::posix_spawn_file_actions_init(&a_); }
    ~SpawnActions() { ::posix_spawn_file_actions_destroy(&a_); }
    SpawnActions(const SpawnActions&) = delete;
    SpawnActions& operator=(const SpawnActions&) = delete;
    posix_spawn_file_actions_t* get() { return &a_; }

private:
    posix_spawn_file_actions_t a_;
};

} // namespace

void run_program(const std::vector<std::string>& argv) {
    const std::string what = command_line(argv);
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
        throw_errno(context("run", what));
    UniqueFd read_end(pipe_fds[0]);
    UniqueFd write_end(pipe_fds[1]);

    SpawnActions actions;
    ::posix_spawn_file_actions_addopen(actions.get(), 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), 2);
    ::posix_spawn_file_actions_addopen(actions.get(), 1, "/dev/null", O_WRONLY, 0);
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid;
    const int err = ::posix_spawnp(&pid, args[0], actions.get(), nullptr, args.data(), environ);
    if (err != 0)
        throw Error(err, context("run", what), "cannot start " + argv[0]);
    write_end = UniqueFd();

    std::string output;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
        if (n > 0)
            output.append(buf, static_cast<std::size_t>(n));
        else if (n == 0 || errno != EINTR)
            break;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            throw_errno(context("wait for", what));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return;
    const std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                              : "signal " + std::to_string(WTERMSIG(status));
    const std::string said = last_line(output);
    // The error the program met, where it names one that says more than
    // EIO (a full file system, a quota, a read-only one, permissions).
    int code = EIO;
    for (const int e : {ENOSPC, EDQUOT, EROFS, EACCES, EPERM})
        if (said.find(std::strerror(e)) != std::string::npos) {
            code = e;
            break;
        }
    throw Error(code, context("run", what), how + (said.empty() ? "" : ": " + said));
}

} // namespace blksnap::backup
