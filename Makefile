# blksnap top-level driver. Two commands matter (see README.md):
#   make demo    install what is missing, build, show the main job in a guest
#   make check   install what is missing, build, run every test
# KERNELS narrows the guest kernels: make check KERNELS=stock-6.12
# make soak runs tests/stress/soak.sh for SOAK_SECS on each of KERNELS, then
# the model (tests/guest/model.sh) for SOAK_MODEL_OPS operations in each
# column (a clock seed, printed; SOAK_SEED=S replays one).

KERNELS ?= stock-6.1 stock-6.12 rt-6.12 cloud-6.12 stock-7.2 rt-7.2 blkfilter-6.12
SOAK_SECS ?= 300
SOAK_MODEL_OPS ?= 600
BUILD   := build
MESON   := $(BUILD)/meson

.PHONY: all deps userspace kernels kmod unit check demo bench soak lint deb clean

all: userspace kmod

deps:
	@scripts/deps.sh

# C++ userspace (libraries, CLI, FUSE daemon, unit tests).
userspace: deps
	@[ -f $(MESON)/build.ninja ] || meson setup $(MESON) -Dwerror=true >/dev/null
	@ninja -C $(MESON) --quiet

kernels: deps
	@for k in $(KERNELS); do scripts/kernels.sh ensure $$k || exit 1; done

kmod: kernels
	@for k in $(KERNELS); do scripts/build-kmod.sh $$k || exit 1; done

unit: userspace
	@meson test -C $(MESON) -q --print-errorlogs

# tests/check.sh builds the userspace and the kernels itself, the guests of
# a kernel starting as soon as it is ready. Without KERNELS it runs its own
# default: these seven, and blkfilter-7.2 when this machine has built it.
check: deps
	@tests/check.sh $(if $(filter-out file,$(origin KERNELS)),$(KERNELS))

demo: userspace
	@$(MAKE) -s kmod KERNELS=stock-6.12
	@tests/vm/run stock-6.12 --disks 1 -- scripts/demo.sh

bench: userspace
	@scripts/deps.sh --bench
	@$(MAKE) -s kmod KERNELS=stock-6.12
	@bench/run

soak: userspace kmod
	@for k in $(KERNELS); do \
		tests/vm/run $$k --disks 3 --timeout $$(($(SOAK_SECS) + 900)) \
			--env SOAK_SECS=$(SOAK_SECS) -- tests/stress/soak.sh || exit 1; \
		for p in "" $$(case $$k in blkfilter-*) echo interception=ftrace;; esac); do \
			tests/vm/run $$k --smp 1 --modparams "$$p" --timeout $$(($(SOAK_MODEL_OPS) * 12 + 900)) \
				--env MODEL_OPS=$(SOAK_MODEL_OPS) $(if $(SOAK_SEED),--env MODEL_SEED=$(SOAK_SEED)) \
				-- tests/guest/model.sh || exit 1; \
		done; \
	done

# Debian packages (debian/): blksnap, blksnap-dkms, libblksnap1,
# libblksnap-dev, built with dpkg-buildpackage from a copy of the tree in
# build/deb/src; the .deb files are left in build/deb/.
deb: deps
	@rm -f $(BUILD)/deb/*.deb $(BUILD)/deb/*.ddeb $(BUILD)/deb/*.changes $(BUILD)/deb/*.buildinfo
	@mkdir -p $(BUILD)/deb/src
	@rsync -a --delete --exclude=/build --exclude=/.git --exclude='/obj-*' ./ $(BUILD)/deb/src/
	@cd $(BUILD)/deb/src && dpkg-buildpackage -us -uc -b -jauto >../build.log 2>&1 || \
		{ tail -n 30 ../build.log; echo "make deb: failed, log: $(BUILD)/deb/build.log"; exit 1; }
	@cd $(BUILD)/deb && ls -l *.deb | awk '{ printf "%8d  %s\n", $$5, $$9 }'

lint: kernels
	@scripts/lint.sh

clean:
	rm -rf $(BUILD)
