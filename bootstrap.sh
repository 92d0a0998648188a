#!/bin/sh
# Set up everything the inspector needs on a fresh Debian/Ubuntu machine with Python 3.11:
#   ./bootstrap.sh        system packages (when missing) + .venv + the inspector
#   ./bootstrap.sh test   ... + test tools, Debian's chromium for the browser tests and Debian's
#                         postgresql for the store's PostgreSQL tests and mosquitto for the MQTT
#                         events tests (the tests start their own throwaway servers; nothing is
#                         configured system-wide; on a machine run by systemd, Debian starts its
#                         own mosquitto on port 1883, which the tests do not use), and Debian's
#                         systemd for `systemd-analyze verify` on the units, and libfuse3 for the
#                         power-loss test's filesystem; PyTorch (CPU) for `inspector train`'s tests;
#                         Aravis (its GigE Vision camera simulator), pypylon (its camera emulator),
#                         GStreamer's RTSP server and ffmpeg for the camera tests
# Idempotent: re-running installs only what is missing. pip caches the llama-cpp-python build
# (~6 minutes on 2 cores the first time).
set -eu
cd "$(dirname "$0")"
want_test=${1:-}

need=""
command -v g++ >/dev/null 2>&1 || need="$need g++"
command -v cmake >/dev/null 2>&1 || need="$need cmake"
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need="$need python3-venv"
if [ "$want_test" = "test" ]; then
  [ -x /usr/bin/chromium ] || need="$need chromium"
  command -v sqlite3 >/dev/null 2>&1 || need="$need sqlite3"
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
  [ -x /usr/sbin/mosquitto ] || need="$need mosquitto"
  command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
  ls /usr/lib/*/libfuse3.so.3 >/dev/null 2>&1 || need="$need libfuse3-3"
  # the camera tests: Aravis and its GigE Vision simulator; PyGObject's build (GObject introspection,
  # cairo) for the [aravis] extra; GStreamer's RTSP server and ffmpeg (H.264) for the rtsp source
  command -v arv-fake-gv-camera-0.8 >/dev/null 2>&1 || need="$need aravis-tools gir1.2-aravis-0.8"
  pkg-config --exists gobject-introspection-1.0 cairo 2>/dev/null || need="$need libgirepository1.0-dev libcairo2-dev pkg-config"
  python3 -c "import sysconfig, os; assert os.path.exists(sysconfig.get_paths()['include'] + '/Python.h')" 2>/dev/null || need="$need python3-dev"
  ls /usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib >/dev/null 2>&1 || need="$need gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
  command -v ffmpeg >/dev/null 2>&1 || need="$need ffmpeg"
fi
if [ -n "$need" ]; then
  echo "bootstrap: installing Debian packages:$need" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
sh patches/build_llama_cpp_python.sh .venv  # our llama.cpp patches, when there are any (patches/README.md)
if [ "$want_test" = "test" ]; then
  .venv/bin/python -m pip install -q -e '.[test,build-models,train,aravis,pylon]'
else
  .venv/bin/python -m pip install -q -e .
fi
echo "bootstrap: ready (.venv)" >&2
