// The blksnap command against the fake kernel: parsing, exit codes, output.
#include "app.hpp"
#include "args.hpp"
#include "fake_kernel.hpp"
#include "progress.hpp"
#include "tmp_dir.hpp"

#include <blksnap/backup/points.hpp>
#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <xxhash.h>

namespace blksnap::test {
namespace {

const std::vector<std::string> commands{"version",
                                        "attach",
                                        "detach",
                                        "cbtinfo",
                                        "readcbtmap",
                                        "markdirtyblock",
                                        "snapshot_create",
                                        "snapshot_add",
                                        "snapshot_info",
                                        "snapshot_take",
                                        "snapshot_destroy",
                                        "snapshot_collect",
                                        "snapshot_devices",
                                        "snapshot_waitevent",
                                        "snapshot_watcher",
                                        "backup",
                                        "points",
                                        "restore",
                                        "verify"};

struct Result {
    int rc;
    std::string out, err;
};

class CliTest : public ::testing::Test {
protected:
    FakeKernel kernel;
    int opened = 0;
    TmpDir dir;

    void SetUp() override {
        kernel.add_device("/dev/vdb", 64 * 65536, 65536);
        kernel.add_device("/dev/vdc", 64 * 65536, 65536);
    }

    Result run(std::vector<std::string> args) {
        args.insert(args.begin(), "blksnap");
        std::vector<const char*> argv;
        for (const auto& a : args)
            argv.push_back(a.c_str());
        std::ostringstream out, err;
        const int rc = cli::run(
            int(argv.size()), argv.data(),
            [this] {
                ++opened;
                return std::shared_ptr<KernelBackend>(&kernel, [](KernelBackend*) {});
            },
            out, err);
        return {rc, out.str(), err.str()};
    }

    Uuid create(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args{"snapshot_create", "-f", dir.path().string(), "-l", "1G"};
        args.insert(args.end(), extra.begin(), extra.end());
        const Result r = run(args);
        EXPECT_EQ(r.rc, 0) << r.err;
        return Uuid::parse(r.out.substr(0, 36));
    }
};

TEST_F(CliTest, HelpWorksEverywhereWithoutTheModule) {
    Result r = run({"-h"});
    EXPECT_EQ(r.rc, 0);
    for (const auto& c : commands)
        EXPECT_NE(r.out.find(c), std::string::npos) << c;
    for (const auto& c : commands) {
        for (const char* h : {"-h", "--help"}) {
            r = run({c, h});
            EXPECT_EQ(r.rc, 0) << c;
            EXPECT_NE(r.out.find("Usage: blksnap " + c), std::string::npos) << c << r.out;
        }
    }
    EXPECT_EQ(opened, 0);
}

TEST_F(CliTest, LongOptionsExist) {
    const std::map<std::string, std::vector<std::string>> expected{
        {"cbtinfo", {"--device", "--json"}},
        {"readcbtmap", {"--device", "--file"}},
        {"markdirtyblock", {"--device", "--ranges", "--range", "--file"}},
        {"snapshot_info", {"--device", "--field", "--json"}},
        {"snapshot_create", {"--device", "--file", "--limit", "--json"}},
        {"snapshot_waitevent", {"--id", "--timeout", "--json"}},
        {"snapshot_collect", {"--json"}},
        {"snapshot_devices", {"--id", "--json"}},
        {"version", {"--json"}}};
    for (const auto& [cmd, options] : expected)
        for (const auto& o : options)
            EXPECT_NE(run({cmd, "-h"}).out.find(o), std::string::npos) << cmd << " " << o;
}

TEST_F(CliTest, BadUsageExitsTwo) {
    const std::vector<std::vector<std::string>> bad{
        {},
        {"nosuchcommand"},
        {"cbtinfo"},
        {"cbtinfo", "-d"},
        {"cbtinfo", "-d", "/dev/vdb", "extra"},
        {"snapshot_take", "-i", "not-a-uuid"},
        {"snapshot_take", "--id", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f"},
        {"snapshot_waitevent", "-i", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
        {"snapshot_waitevent", "-i", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "-t", "soon"},
        {"snapshot_create", "-f", "/var/tmp", "-l", "10X"},
        {"snapshot_create", "-f", "/var/tmp", "-l", "-5"},
        {"snapshot_create", "-f", "/var/tmp"},
        {"snapshot_info", "-d", "/dev/vdb", "-f", "size"},
        {"markdirtyblock"},
        {"markdirtyblock", "-d", "/dev/vdb"},
        {"markdirtyblock", "-d", "/dev/vdb", "-r", "10"},
        {"markdirtyblock", "-d", "/dev/vdb", "-r", "a:8"},
        {"markdirtyblock", "-d", "/dev/vdb", "-r", "8:0"},
        {"markdirtyblock", "-d", "/dev/vdb", "-r", "8:-1"},
        {"markdirtyblock", "-d", "/dev/vdb", "-r", "0:8", "1:2:3"},
        {"markdirtyblock", "-f", "/etc/hostname", "-r", "0:8"},
    };
    for (const auto& args : bad) {
        const Result r = run(args);
        std::string line;
        for (const auto& a : args)
            line += a + " ";
        EXPECT_EQ(r.rc, 2) << line;
        EXPECT_FALSE(r.err.empty()) << line;
        EXPECT_TRUE(r.err.rfind("blksnap: ", 0) == 0 || args.empty()) << line << r.err;
    }
    EXPECT_EQ(opened, 0);
}

// As the upstream tool: "help" prints the usage, no command is an error.
TEST_F(CliTest, HelpCommandAndNoCommand) {
    Result r = run({"help"});
    EXPECT_EQ(r.rc, 0);
    EXPECT_NE(r.out.find("snapshot_watcher"), std::string::npos) << r.out;
    EXPECT_EQ(r.err, "");
    r = run({});
    EXPECT_EQ(r.rc, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "Command not found.\n");
    EXPECT_EQ(opened, 0);
}

TEST_F(CliTest, ParseErrorsCarryThePrefix) {
    const Result r = run({"snapshot_take"});
    EXPECT_EQ(r.rc, 2);
    EXPECT_EQ(r.err, "blksnap: --id is required\nRun with --help for more information.\n");
}

TEST_F(CliTest, UnknownCommandIsNamed) {
    const Result r = run({"snapshot_destory", "-i", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"});
    EXPECT_EQ(r.rc, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("unknown command 'snapshot_destory'"), std::string::npos) << r.err;
}

TEST_F(CliTest, RangeParsing) {
    EXPECT_EQ(cli::parse_range("0:8"), (SectorRange{0, 8}));
    EXPECT_EQ(cli::parse_range("18446744073709551615:1"), (SectorRange{UINT64_MAX, 1}));
    for (const char* bad :
         {"", ":", "1:", ":1", "1", "1:0", "x:1", "1:1x", " 1:1", "1:18446744073709551616"})
        EXPECT_FALSE(cli::parse_range(bad)) << bad;
}

TEST_F(CliTest, SizeParsing) {
    EXPECT_EQ(cli::parse_size("0"), 0u);
    EXPECT_EQ(cli::parse_size("3072K"), 3145728u);
    EXPECT_EQ(cli::parse_size("48m"), 50331648u);
    EXPECT_EQ(cli::parse_size("18446744073709551615"), UINT64_MAX);
    EXPECT_EQ(cli::parse_size("17179869183G"), 17179869183ull << 30);
    for (const char* bad :
         {"", "M", "K1", "1KM", "1X", "-5", "+5", " 5M", "5M ", "5 M", "5.5M", "1e3", "0x10", "5MB",
          "5MiB", "1T", "18446744073709551616", "17179869184G"})
        EXPECT_FALSE(cli::parse_size(bad)) << bad;
}

TEST(Progress, LineShowsShareRateAndEta) {
    EXPECT_EQ(cli::human_bytes(512), "512 B");
    EXPECT_EQ(cli::human_bytes(3 << 20), "3.0 MiB");
    EXPECT_EQ(cli::clock_text(3723), "1:02:03");
    EXPECT_EQ(cli::clock_text(65), "1:05");
    EXPECT_EQ(cli::ProgressBar::line("vdb", 1 << 20, 4 << 20, 2.0),
              "vdb [#######.......................] 25% 1.0 MiB/4.0 MiB 512.0 KiB/s ETA 0:06");
}

TEST_F(CliTest, LimitSuffixes) {
    const std::vector<std::pair<std::string, std::uint64_t>> cases{
        {"4096", 8}, {"1000", 2}, {"512K", 1024}, {"10M", 20480}, {"1G", 2097152}, {"2g", 4194304}};
    for (const auto& [text, sectors] : cases) {
        const Result r = run({"snapshot_create", "--file", dir.path().string(), "--limit", text});
        ASSERT_EQ(r.rc, 0) << r.err;
        EXPECT_EQ(kernel.snapshots.at(Uuid::parse(r.out.substr(0, 36))).limit_sectors, sectors)
            << text;
    }
}

TEST_F(CliTest, ModuleNotLoaded) {
    std::ostringstream out, err;
    const char* argv[] = {"blksnap", "version"};
    const int rc = cli::run(
        2, argv,
        []() -> std::shared_ptr<KernelBackend> {
            throw Error(ENOENT, "", "blksnap module not loaded");
        },
        out, err);
    EXPECT_EQ(rc, 1);
    EXPECT_EQ(err.str(), "blksnap: blksnap module not loaded\n");
}

TEST_F(CliTest, Version) {
    EXPECT_EQ(run({"version"}).out, "1.2.3.0\n");
    const auto doc = nlohmann::json::parse(run({"version", "--json"}).out);
    EXPECT_EQ(doc["version"], "1.2.3.0");
    EXPECT_EQ(doc["minor"], 2);
}

TEST_F(CliTest, AttachDetach) {
    Result a = run({"attach", "-d", "/dev/vdb", "/dev/vdc"});
    EXPECT_EQ(a.rc, 0);
    EXPECT_EQ(a.out, "Attached successfully\nAttached successfully\n");
    EXPECT_TRUE(kernel.devices["/dev/vdb"].attached);
    EXPECT_TRUE(kernel.devices["/dev/vdc"].attached);
    a = run({"attach", "--device", "/dev/vdb"}); // already attached: fine
    EXPECT_EQ(a.rc, 0);
    EXPECT_EQ(a.out, "Already was attached\n");
    EXPECT_EQ(run({"detach", "-d", "/dev/vdb"}).rc, 0);
    const Result r = run({"detach", "-d", "/dev/vdb"});
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.err, "blksnap: detach /dev/vdb: No such file or directory\n");
    kernel.fail_next("attach", "/dev/vdc", EBUSY);
    EXPECT_EQ(run({"attach", "-d", "/dev/vdc"}).err,
              "blksnap: attach /dev/vdc: Device or resource busy\n");
}

TEST_F(CliTest, CbtInfo) {
    run({"attach", "-d", "/dev/vdb"});
    kernel.devices["/dev/vdb"].info.changes_number = 4;
    const auto gen = kernel.devices["/dev/vdb"].info.generation_id.str();
    Result r = run({"cbtinfo", "-d", "/dev/vdb"});
    EXPECT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "block_size=65536\ndevice_capacity=4194304\nblock_count=64\ngeneration_id=" +
                         gen + "\nchanges_number=4\n");
    const auto doc = nlohmann::json::parse(run({"cbtinfo", "-d", "/dev/vdb", "-j"}).out);
    EXPECT_EQ(doc["block_count"], 64);
    EXPECT_EQ(doc["generation_id"], gen);
    EXPECT_EQ(doc["changes_number"], 4);
    r = run({"cbtinfo", "-d", "/dev/vdc"});
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.err, "blksnap: cbtinfo /dev/vdc: No such file or directory\n");
}

TEST_F(CliTest, ReadCbtMapWritesTheRawMap) {
    run({"attach", "-d", "/dev/vdb"});
    kernel.max_map_piece = 10;
    kernel.write_block("/dev/vdb", 3);
    kernel.write_block("/dev/vdb", 63);
    const auto file = (dir / "cbt.map").string();
    ASSERT_EQ(run({"readcbtmap", "-d", "/dev/vdb", "-f", file}).rc, 0);
    std::ifstream in(file, std::ios::binary);
    const std::vector<std::uint8_t> map((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(map, kernel.devices["/dev/vdb"].map);
    EXPECT_EQ(map.size(), 64u);
    const Result r = run({"readcbtmap", "-d", "/dev/vdb", "-f", (dir / "no/such").string()});
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("no/such: No such file or directory"), std::string::npos) << r.err;
}

TEST_F(CliTest, MarkDirtyRanges) {
    run({"attach", "-d", "/dev/vdb"});
    const Result r = run({"markdirtyblock", "-d", "/dev/vdb", "-r", "0:8", "--ranges", "4096:128",
                          "--range", "8000:1"});
    EXPECT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(kernel.devices["/dev/vdb"].dirty,
              (std::vector<SectorRange>{{0, 8}, {4096, 128}, {8000, 1}}));
    EXPECT_EQ(run({"markdirtyblock", "-d", "/dev/vdb", "-r", "8191:2"}).rc, 1); // beyond the end
}

TEST_F(CliTest, MarkDirtyFile) {
    const auto file = (dir / "data").string();
    std::ofstream(file) << std::string(100000, 'z');
    struct stat st;
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    if (::major(st.st_dev) == 0)
        GTEST_SKIP() << "/var/tmp is not on a block device";
    const std::string dev = block_device_path({::major(st.st_dev), ::minor(st.st_dev)});
    kernel.add_device(dev, 1ull << 50, 65536).attached = true;
    const Result r = run({"markdirtyblock", "--file", file});
    ASSERT_EQ(r.rc, 0) << r.err;
    std::uint64_t sectors = 0;
    std::string want = "device path: '" + dev + "'\n";
    for (const auto& range : kernel.devices[dev].dirty) {
        sectors += range.count;
        want += "allocate range: ofs=" + std::to_string(range.offset) +
                " cnt=" + std::to_string(range.count) + "\n";
    }
    EXPECT_EQ(sectors, 200u); // 100000 bytes in whole 4096-byte file system blocks
    EXPECT_EQ(r.out, want);   // the upstream tool's lines
}

TEST_F(CliTest, SnapshotLifecycle) {
    Result r = run({"snapshot_create", "-d", "/dev/vdb", "-d", "/dev/vdc", "-f",
                    dir.path().string(), "-l", "100M"});
    ASSERT_EQ(r.rc, 0) << r.err;
    ASSERT_EQ(r.out.size(), 37u); // only the UUID
    const std::string id = r.out.substr(0, 36);
    EXPECT_EQ(kernel.snapshots.at(Uuid::parse(id)).devices.size(), 2u);
    EXPECT_TRUE(kernel.devices["/dev/vdb"].attached);

    EXPECT_EQ(run({"snapshot_info", "-d", "/dev/vdb"}).out, "error_code=0\nimage=\n");
    EXPECT_EQ(run({"snapshot_take", "-i", id}).rc, 0);
    EXPECT_EQ(run({"snapshot_info", "-d", "/dev/vdb"}).out,
              "error_code=0\nimage=/dev/blksnap-image_252:0\n");
    EXPECT_EQ(run({"snapshot_info", "-d", "/dev/vdc", "-f", "image"}).out,
              "/dev/blksnap-image_252:1\n");
    kernel.devices["/dev/vdc"].error_code = -ENOSPC;
    EXPECT_EQ(run({"snapshot_info", "-d", "/dev/vdc", "--field", "error_code"}).out, "-28\n");
    EXPECT_EQ(run({"snapshot_info", "-d", "/dev/vdc", "-j"}).out,
              "{\"error_code\":-28,\"image\":\"/dev/blksnap-image_252:1\"}\n");
    EXPECT_EQ(run({"snapshot_collect"}).out, id + "\n");
    {
        const auto doc = nlohmann::json::parse(run({"snapshot_devices", "-i", id, "-j"}).out);
        ASSERT_EQ(doc["devices"].size(), 2u);
        EXPECT_EQ(doc["devices"][0]["dev_id"], "252:0");
        EXPECT_EQ(doc["devices"][1]["dev_id"], "252:1");
        const std::string text = run({"snapshot_devices", "--id", id}).out;
        EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
    }

    EXPECT_EQ(run({"snapshot_destroy", "-i", id}).rc, 0);
    EXPECT_TRUE(kernel.snapshots.empty());
    r = run({"snapshot_destroy", "--id", id});
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.err, "blksnap: snapshot_destroy " + id + ": No such file or directory\n");
    EXPECT_EQ(run({"snapshot_collect", "--json"}).out, "{\"snapshots\":[]}\n");
    r = run({"snapshot_devices", "-i", id});
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.err, "blksnap: snapshot_devices " + id + ": No such file or directory\n");
}

TEST_F(CliTest, SnapshotCreateFailureLeavesNoSnapshot) {
    kernel.fail_next("snapshotadd", "/dev/vdb", EBUSY);
    Result r = run({"snapshot_create", "-d", "/dev/vdb", "-f", dir.path().string(), "-l", "1M"});
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.err, "blksnap: snapshotadd /dev/vdb: Device or resource busy\n");
    EXPECT_TRUE(r.out.empty());
    EXPECT_TRUE(kernel.snapshots.empty());
    r = run({"snapshot_create", "-f", "/dev/null", "-l", "1M"});
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("difference storage /dev/null: not a directory"), std::string::npos);
}

TEST_F(CliTest, SnapshotAddToAnUnknownSnapshotNamesIt) {
    const Uuid id = create();
    run({"snapshot_destroy", "-i", id.str()});
    const Result r = run({"snapshot_add", "-d", "/dev/vdb", "-i", id.str()});
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.err, "blksnap: snapshotadd /dev/vdb: snapshot " + id.str() +
                         ": No such file or directory\n");
}

TEST_F(CliTest, SnapshotAddAttachesFirst) {
    const Uuid id = create();
    EXPECT_EQ(run({"snapshot_add", "-d", "/dev/vdb", "-i", id.str()}).rc, 0);
    EXPECT_TRUE(kernel.devices["/dev/vdb"].attached);
    EXPECT_EQ(kernel.devices["/dev/vdb"].snapshot, id);
}

TEST_F(CliTest, CreateJsonPrintsTheId) {
    const Result r = run({"snapshot_create", "-f", dir.path().string(), "-l", "1M", "-j"});
    const auto doc = nlohmann::json::parse(r.out);
    EXPECT_TRUE(kernel.snapshots.count(Uuid::parse(doc["id"].get<std::string>())));
}

TEST_F(CliTest, WaitEvent) {
    const Uuid id = create();
    kernel.snapshots[id].events.push_back({blksnap_event_code_corrupted, 77, {252, 0}, -ENOSPC});
    kernel.snapshots[id].events.push_back({7, 78, {}, 0});
    Result r = run({"snapshot_waitevent", "-i", id.str(), "-t", "100"});
    EXPECT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "result=ok\ntime=77\nevent=corrupted\ndev_id=252:0\nerr_code=-28\n");
    r = run({"snapshot_waitevent", "-i", id.str(), "-t", "100"});
    EXPECT_EQ(r.out, "result=ok\ntime=78\nevent=7\n"); // an unknown code: its number
    r = run({"snapshot_waitevent", "-i", id.str(), "--timeout", "100"});
    EXPECT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "result=timeout\n");
    EXPECT_EQ(run({"snapshot_waitevent", "-i", id.str(), "-t", "1", "-j"}).out,
              "{\"result\":\"timeout\"}\n");
    kernel.fail_next("snapshot_waitevent", id.str(), EINTR);
    EXPECT_EQ(run({"snapshot_waitevent", "-i", id.str(), "-t", "1"}).out, "result=interrupted\n");
    run({"snapshot_destroy", "-i", id.str()});
    r = run({"snapshot_waitevent", "-i", id.str(), "-t", "1"});
    EXPECT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "result=not found\n");
    EXPECT_EQ(r.err, "");
}

TEST_F(CliTest, WatcherFollowsUntilTheSnapshotEnds) {
    const Uuid id = create();
    auto& s = kernel.snapshots[id];
    s.events.push_back({blksnap_event_code_corrupted, 1, {252, 0}, -EIO});
    s.events.push_back({blksnap_event_code_corrupted, 2, {252, 1}, -ENOSPC});
    s.vanish_when_drained = true;
    const Result r = run({"snapshot_watcher", "-i", id.str(), "--json"});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "{\"result\":\"ok\",\"time\":1,\"event\":\"corrupted\",\"dev_id\":\"252:"
                     "0\",\"err_code\":-5}\n"
                     "{\"result\":\"ok\",\"time\":2,\"event\":\"corrupted\",\"dev_id\":\"252:"
                     "1\",\"err_code\":-28}\n");
}

// As the upstream tool: the first corruption, then the end.
TEST_F(CliTest, WatcherStopsAtTheFirstCorruption) {
    const Uuid id = create();
    auto& s = kernel.snapshots[id];
    s.events.push_back({7, 1, {}, 0});
    s.events.push_back({blksnap_event_code_corrupted, 2, {252, 1}, -ENOSPC});
    s.events.push_back({blksnap_event_code_corrupted, 3, {252, 0}, -EIO});
    Result r = run({"snapshot_watcher", "-i", id.str()});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "Start snapshot watcher.\n"
                     "1 - unsupported event #7.\n"
                     "2 - The snapshot was corrupted for device [252:1] with error \"No space left "
                     "on device\".\n"
                     "Snapshot watcher finished.\n");
    r = run({"snapshot_watcher", "-i", id.str()});
    EXPECT_EQ(r.out, "Start snapshot watcher.\n"
                     "3 - The snapshot was corrupted for device [252:0] with error "
                     "\"Input/output error\".\n"
                     "Snapshot watcher finished.\n");
    s.vanish_when_drained = true; // no event: the snapshot goes
    r = run({"snapshot_watcher", "-i", id.str()});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "Start snapshot watcher.\nThe snapshot no longer exists.\n"
                     "Snapshot watcher finished.\n");
}

// As the upstream tool: a snapshot already gone ends the watch at once, and
// that is no error.
TEST_F(CliTest, WatcherOfASnapshotAlreadyGoneEndsAtOnce) {
    const Uuid id = create();
    run({"snapshot_destroy", "-i", id.str()});
    Result r = run({"snapshot_watcher", "-i", id.str()});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "Start snapshot watcher.\nThe snapshot no longer exists.\n"
                     "Snapshot watcher finished.\n");
    EXPECT_EQ(r.err, "");
    r = run({"snapshot_watcher", "-i", id.str(), "--json"});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "");
}

TEST_F(CliTest, RestorePointCommandsCheckTheirArguments) {
    // Usage errors: exit 2 before anything is opened.
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"restore", "-o", dir.path().string()},
             {"restore", "-d", "/dev/vdb"},
             {"points"},
             {"verify", "-o", dir.path().string(), "-p", "x"},
             {"backup", "-d", "/dev/vdb", "-o", "x", "-f", "y", "-l", "1M", "--format", "zip"},
             {"backup", "-d", "/dev/vdb", "-o", "x", "-f", "y", "-l", "1M", "--keep", "0"}}) {
        const Result r = run(args);
        EXPECT_EQ(r.rc, 2) << args[0] << " " << r.err;
    }
    EXPECT_EQ(opened, 0);
    // A point's number is decimal, with the leading zeros of its file name.
    for (const char* bad : {"x", "-1", "1x", ""}) {
        const Result r = run({"verify", "-o", dir.path().string(), "-p", bad});
        EXPECT_EQ(r.rc, 2) << bad << " " << r.err;
    }
    {
        // One point, 1: 4 KiB of zeros.
        TmpDir backup;
        std::filesystem::create_directory(backup / "vdb.points");
        std::ofstream(backup / "vdb.points" / "000001.raw") << std::string(4096, '\0');
        backup::PointMeta m;
        m.device = "/dev/vdb";
        m.id = 1;
        m.size = 4096;
        m.block_size = 4096;
        m.sums = {XXH64(std::string(4096, '\0').data(), 4096, 0)};
        backup::write_point_meta(backup / "vdb.points" / "000001.meta", m);
        Result r = run({"verify", "-o", backup.path().string(), "-p", "000001"});
        EXPECT_EQ(r.rc, 0) << r.err;
        EXPECT_NE(r.out.find("point 1 verified"), std::string::npos) << r.out;
        r = run({"verify", "-o", backup.path().string(), "-p", "010"});
        EXPECT_EQ(r.rc, 1);
        EXPECT_NE(r.err.find("restore point 10 in"), std::string::npos) << r.err;
    }
    // No points: errors that say so, exit 1.
    Result r = run({"points", "-o", (dir / "none").string()});
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
    r = run({"restore", "-o", dir.path().string(), "-d", (dir / "t").string()});
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("there are none"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "t"));
    r = run({"verify", "-o", dir.path().string()});
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("there are none"), std::string::npos) << r.err;
    // An empty directory lists nothing.
    r = run({"points", "-o", dir.path().string(), "--json"});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "");
}

} // namespace
} // namespace blksnap::test
