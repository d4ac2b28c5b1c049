#!/bin/sh
# Builds testdata/roots/ from the settings of real Raspberry Pi files (see
# SOURCES.md). Re-run after editing; the result is checked in.
set -eu
cd "$(dirname "$0")"
rm -rf roots
bookworm_cfg() {
	printf 'dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\nauto_initramfs=1\ndtoverlay=vc4-kms-v3d\nmax_framebuffers=2\ndisable_fw_kms_setup=1\ndisable_overscan=1\narm_boost=1\n\n[cm4]\notg_mode=1\n\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n\n[all]\n'
}
bullseye_cfg() {
	printf 'dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\ndtoverlay=vc4-kms-v3d\nmax_framebuffers=2\ndisable_overscan=1\n\n[cm4]\notg_mode=1\n\n[all]\n\n[pi4]\narm_boost=1\n\n[all]\n'
}
# machine outputs, copied (see SOURCES.md)
CMDLINE_LITE='console=serial0,115200 console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait'
CMDLINE_NOSERIAL='console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait'
CMDLINE_BULLSEYE='console=serial0,115200 console=tty1 root=ROOTDEV rootfstype=ext4 fsck.repair=yes rootwait'
CMDLINE_STRETCH='dwc_otg.lpm_enable=0 console=serial0,115200 console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 elevator=deadline fsck.repair=yes rootwait quiet init=/usr/lib/raspi-config/init_resize.sh splash plymouth.ignore-serial-consoles'
PROC_CMDLINE='8250.nr_uarts=1 bcm2708_fb.fbwidth=1280 bcm2708_fb.fbheight=720 bcm2708_fb.fbswap=1 vc_mem.mem_base=0x3ec00000 vc_mem.mem_size=0x40000000  dwc_otg.lpm_enable=0 console=ttyS0,115200 console=tty1 root=PARTUUID=38b25fe3-02 rootfstype=ext4 elevator=deadline fsck.repair=yes rootwait quiet splash plymouth.ignore-serial-consoles'
PROC_CMDLINE_NOSERIAL='8250.nr_uarts=1 bcm2708_fb.fbwidth=1280 bcm2708_fb.fbheight=720 bcm2708_fb.fbswap=1 vc_mem.mem_base=0x3ec00000 vc_mem.mem_size=0x40000000  dwc_otg.lpm_enable=0 console=tty1 root=PARTUUID=38b25fe3-02 rootfstype=ext4 elevator=deadline fsck.repair=yes rootwait quiet splash plymouth.ignore-serial-consoles'
MINI='/soc/serial@7e215040'
PL011='/soc/serial@7e201000'

# root NAME BOOTDIR: start a root with the Pi 3 B model string
root() {
	R=roots/$1
	mkdir -p "$R/$2" "$R/proc/device-tree/aliases" "$R/dev"
	printf 'Raspberry Pi 3 Model B Rev 1.2\0' >"$R/proc/device-tree/model"
}
aliases() { # ROOT SERIAL0 SERIAL1 TTY
	printf '%s\0' "$2" >"roots/$1/proc/device-tree/aliases/serial0"
	printf '%s\0' "$3" >"roots/$1/proc/device-tree/aliases/serial1"
	[ -z "$4" ] || ln -s "$4" "roots/$1/dev/serial0"
}

root bookworm-good boot/firmware
{ bookworm_cfg; echo enable_uart=1; } >roots/bookworm-good/boot/firmware/config.txt
echo "$CMDLINE_LITE" >roots/bookworm-good/boot/firmware/cmdline.txt
echo "$PROC_CMDLINE" >roots/bookworm-good/proc/cmdline
printf "This file is now at /boot/firmware/config.txt\n" >roots/bookworm-good/boot/config.txt
aliases bookworm-good "$MINI" "$PL011" ttyS0

root bookworm-shipped boot/firmware
bookworm_cfg >roots/bookworm-shipped/boot/firmware/config.txt
echo "$CMDLINE_LITE" >roots/bookworm-shipped/boot/firmware/cmdline.txt
aliases bookworm-shipped "$MINI" "$PL011" ""

root bookworm-no-serial-console boot/firmware
{ bookworm_cfg; echo enable_uart=1; } >roots/bookworm-no-serial-console/boot/firmware/config.txt
echo "$CMDLINE_NOSERIAL" >roots/bookworm-no-serial-console/boot/firmware/cmdline.txt
echo "$PROC_CMDLINE_NOSERIAL" >roots/bookworm-no-serial-console/proc/cmdline
aliases bookworm-no-serial-console "$MINI" "$PL011" ttyS0

root bookworm-disable-bt boot/firmware
{ bookworm_cfg; echo enable_uart=1; echo dtoverlay=disable-bt; } >roots/bookworm-disable-bt/boot/firmware/config.txt
echo "$CMDLINE_LITE" >roots/bookworm-disable-bt/boot/firmware/cmdline.txt
aliases bookworm-disable-bt "$PL011" "$MINI" ttyAMA0

root bookworm-miniuart-bt boot/firmware
{ bookworm_cfg; echo enable_uart=1; echo dtoverlay=miniuart-bt; echo core_freq=250; } >roots/bookworm-miniuart-bt/boot/firmware/config.txt
echo "$CMDLINE_LITE" >roots/bookworm-miniuart-bt/boot/firmware/cmdline.txt
aliases bookworm-miniuart-bt "$PL011" "$MINI" ttyAMA0

root bookworm-miniuart-bt-no-core-freq boot/firmware
{ bookworm_cfg; echo enable_uart=1; echo dtoverlay=miniuart-bt; } >roots/bookworm-miniuart-bt-no-core-freq/boot/firmware/config.txt
echo "$CMDLINE_LITE" >roots/bookworm-miniuart-bt-no-core-freq/boot/firmware/cmdline.txt
aliases bookworm-miniuart-bt-no-core-freq "$PL011" "$MINI" ttyAMA0

root stretch-overlay-typo boot
printf 'hdmi_force_hotplug=1\nhdmi_group=2\nhdmi_mode=82\ndtparam=audio=on\n\ndtoverlay=pi3\342\200\220miniuart\342\200\220bt\n\n#dtoverlay=pi3\342\200\220disable\342\200\220bt\n\nenable_uart=1\n\ngpu_mem=128' >roots/stretch-overlay-typo/boot/config.txt
echo "$CMDLINE_STRETCH" >roots/stretch-overlay-typo/boot/cmdline.txt
echo "$PROC_CMDLINE" >roots/stretch-overlay-typo/proc/cmdline
aliases stretch-overlay-typo "$MINI" "$PL011" ttyS0

root bullseye-reboot-pending boot
{ bullseye_cfg; echo enable_uart=1; } >roots/bullseye-reboot-pending/boot/config.txt
echo "$CMDLINE_BULLSEYE" >roots/bullseye-reboot-pending/boot/cmdline.txt
echo "$PROC_CMDLINE_NOSERIAL" >roots/bullseye-reboot-pending/proc/cmdline
aliases bullseye-reboot-pending "$MINI" "$PL011" ttyS0

root cmdline-two-lines boot/firmware
{ bookworm_cfg; echo enable_uart=1; } >roots/cmdline-two-lines/boot/firmware/config.txt
printf 'console=serial0,115200 console=tty1\nroot=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait\n' >roots/cmdline-two-lines/boot/firmware/cmdline.txt
aliases cmdline-two-lines "$MINI" "$PL011" ttyS0

