# aarch64-linux-gnu.cmake — CMake toolchain for cross-building provscan for 64-bit Arm Linux (scripts/check-aarch64.sh).
#
# The Debian cross compiler (gcc-aarch64-linux-gnu) brings the C library; every other library comes
# from arm64 Debian packages unpacked under PROVSCAN_AARCH64_SYSROOT (not installed), found through
# pkg-config. Tests run under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR for ctest; binfmt_misc for
# the programs that the build and the CLI tests start themselves).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

if(NOT DEFINED ENV{PROVSCAN_AARCH64_SYSROOT})
  message(FATAL_ERROR "set PROVSCAN_AARCH64_SYSROOT to the directory the arm64 packages are unpacked in")
endif()
set(PROVSCAN_AARCH64_SYSROOT $ENV{PROVSCAN_AARCH64_SYSROOT})
set(libdirs ${PROVSCAN_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu ${PROVSCAN_AARCH64_SYSROOT}/lib/aarch64-linux-gnu)

set(CMAKE_FIND_ROOT_PATH ${PROVSCAN_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(ENV{PKG_CONFIG_LIBDIR} "${PROVSCAN_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${PROVSCAN_AARCH64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${PROVSCAN_AARCH64_SYSROOT})

# The libraries' own dependencies are resolved in the unpacked tree, not on the build machine.
set(link_flags "")
foreach(d ${libdirs})
  string(APPEND link_flags " -L${d} -Wl,-rpath-link,${d}")
endforeach()
set(CMAKE_EXE_LINKER_FLAGS_INIT "${link_flags}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${link_flags}")

set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${PROVSCAN_AARCH64_SYSROOT})
