// The ABI must stay exactly the v6 one: sizes, offsets and ioctl numbers
// below are the values the v6 header produces on x86_64.
#include <cstddef>
#include <linux/blksnap.h>

#include <gtest/gtest.h>

namespace {

TEST(Uapi, BlkfilterStructs) {
    EXPECT_EQ(BLKFILTER_NAME_LENGTH, 32);
    EXPECT_EQ(sizeof(blkfilter_name), 32u);
    EXPECT_EQ(sizeof(blkfilter_ctl), 48u);
    EXPECT_EQ(offsetof(blkfilter_ctl, cmd), 32u);
    EXPECT_EQ(offsetof(blkfilter_ctl, optlen), 36u);
    EXPECT_EQ(offsetof(blkfilter_ctl, opt), 40u);
}

TEST(Uapi, BlkfilterIoctlNumbers) {
    // _IOWR(0x12, 140..142, ...): dir=3, size in bits 16..29.
    EXPECT_EQ(BLKFILTER_ATTACH, 0xc020128cu);
    EXPECT_EQ(BLKFILTER_DETACH, 0xc020128du);
    EXPECT_EQ(BLKFILTER_CTL, 0xc030128eu);
}

TEST(Uapi, FilterCommandCodes) {
    EXPECT_EQ(blkfilter_ctl_blksnap_cbtinfo, 0);
    EXPECT_EQ(blkfilter_ctl_blksnap_cbtmap, 1);
    EXPECT_EQ(blkfilter_ctl_blksnap_cbtdirty, 2);
    EXPECT_EQ(blkfilter_ctl_blksnap_snapshotadd, 3);
    EXPECT_EQ(blkfilter_ctl_blksnap_snapshotinfo, 4);
}

TEST(Uapi, CbtStructs) {
    EXPECT_EQ(sizeof(blksnap_uuid), 16u);
    EXPECT_EQ(sizeof(blksnap_cbtinfo), 40u);
    EXPECT_EQ(offsetof(blksnap_cbtinfo, block_size), 8u);
    EXPECT_EQ(offsetof(blksnap_cbtinfo, block_count), 12u);
    EXPECT_EQ(offsetof(blksnap_cbtinfo, generation_id), 16u);
    EXPECT_EQ(offsetof(blksnap_cbtinfo, changes_number), 32u);
    EXPECT_EQ(sizeof(blksnap_cbtmap), 16u);
    EXPECT_EQ(offsetof(blksnap_cbtmap, length), 4u);
    EXPECT_EQ(offsetof(blksnap_cbtmap, buffer), 8u);
    EXPECT_EQ(sizeof(blksnap_sectors), 16u);
    EXPECT_EQ(sizeof(blksnap_cbtdirty), 16u);
    EXPECT_EQ(offsetof(blksnap_cbtdirty, dirty_sectors), 8u);
}

TEST(Uapi, SnapshotStructs) {
    EXPECT_EQ(sizeof(blksnap_snapshotadd), 16u);
    EXPECT_EQ(IMAGE_DISK_NAME_LEN, 32);
    EXPECT_EQ(sizeof(blksnap_snapshotinfo), 36u);
    EXPECT_EQ(offsetof(blksnap_snapshotinfo, image), 4u);
    EXPECT_EQ(sizeof(blksnap_version), 8u);
    EXPECT_EQ(sizeof(blksnap_snapshot_create), 32u);
    EXPECT_EQ(offsetof(blksnap_snapshot_create, diff_storage_fd), 8u);
    EXPECT_EQ(offsetof(blksnap_snapshot_create, id), 12u);
    EXPECT_EQ(sizeof(blksnap_snapshot_collect), 16u);
    EXPECT_EQ(offsetof(blksnap_snapshot_collect, ids), 8u);
    EXPECT_EQ(sizeof(blksnap_snapshot_event), 4096u);
    EXPECT_EQ(offsetof(blksnap_snapshot_event, timeout_ms), 16u);
    EXPECT_EQ(offsetof(blksnap_snapshot_event, code), 20u);
    EXPECT_EQ(offsetof(blksnap_snapshot_event, time_label), 24u);
    EXPECT_EQ(offsetof(blksnap_snapshot_event, data), 32u);
    EXPECT_EQ(sizeof(blksnap_event_corrupted), 12u);
    EXPECT_EQ(blksnap_event_code_corrupted, 0);
}

TEST(Uapi, ControlIoctlNumbers) {
    // _IOR/_IOW/_IOWR('V', n, struct): 'V' = 0x56.
    EXPECT_EQ(IOCTL_BLKSNAP_VERSION, 0x80085600u);
    EXPECT_EQ(IOCTL_BLKSNAP_SNAPSHOT_CREATE, 0xc0205601u);
    EXPECT_EQ(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, 0x40105602u);
    EXPECT_EQ(IOCTL_BLKSNAP_SNAPSHOT_TAKE, 0x40105603u);
    EXPECT_EQ(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, 0x80105604u);
    EXPECT_EQ(IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, 0x90005605u);
}

TEST(Uapi, AddedIoctlsFollowTheSeed) {
    EXPECT_EQ(sizeof(blksnap_filter_name), 40u);
    EXPECT_EQ(offsetof(blksnap_filter_name, name), 8u);
    EXPECT_EQ(sizeof(blksnap_filter_ctl), 56u);
    EXPECT_EQ(offsetof(blksnap_filter_ctl, ctl), 8u);
    EXPECT_EQ(IOCTL_BLKSNAP_FILTER_ATTACH, 0x40285606u);
    EXPECT_EQ(IOCTL_BLKSNAP_FILTER_DETACH, 0x40285607u);
    EXPECT_EQ(IOCTL_BLKSNAP_FILTER_CTL, 0xc0385608u);
    EXPECT_EQ(sizeof(blksnap_bdev), 8u);
    EXPECT_EQ(sizeof(blksnap_snapshot_devices), 32u);
    EXPECT_EQ(offsetof(blksnap_snapshot_devices, count), 16u);
    EXPECT_EQ(offsetof(blksnap_snapshot_devices, devices), 24u);
    EXPECT_EQ(IOCTL_BLKSNAP_SNAPSHOT_DEVICES, 0xc0205609u);
}

} // namespace
