# Shared by the example scripts: setup and the default dataset. They run
# from a source checkout (in its root, building into build/) or, installed
# (PREFIX/share/doc/simclrc/examples), in the current directory with the
# installed simclrc. sc_enter picks the place; sc_setup then sets
# SC_SIMCLRC, SC_CONVERT (the dataset converter) and SC_PLOT (plot-run).

# Enters the repository's root when the script lies in a checkout; an
# installed script stays in the current directory.
sc_enter() {
  local here
  here=$(cd "$(dirname "$1")" && pwd)
  if [ -f "$here/../CMakeLists.txt" ] && [ -d "$here/../compiler" ]; then
    cd "$here/.."
    SC_CHECKOUT=1
  else
    SC_CHECKOUT=0
  fi
}

# In a checkout: installs the Debian packages that are missing, then builds
# the compiler (with the runtime libraries it links into training binaries)
# and the dataset converter into build/. Installed: uses what is on PATH.
sc_setup() {
  if [ "$SC_CHECKOUT" = 1 ]; then
    tools/install-deps.sh
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" --target simclrc fmnist2stl10
    SC_SIMCLRC=build/compiler/simclrc SC_CONVERT=build/tools/fmnist2stl10 SC_PLOT=tools/plot-run.sh
  else
    SC_SIMCLRC=simclrc SC_CONVERT=simclrc-fmnist2stl10 SC_PLOT=simclrc-plot-run
    command -v simclrc >/dev/null || { echo "simclrc is not on PATH" >&2; exit 1; }
  fi
}

# Prints the dataset directory: data/stl10_binary when the real STL-10 is
# there, else data/fmnist-stl10, converted from Debian's Fashion-MNIST (the
# first LIMIT images of its train and test sets) unless a conversion with
# the same LIMIT is already there.
sc_default_data() {
  local limit=$1 dir=data/fmnist-stl10
  if [ -f data/stl10_binary/train_X.bin ] && [ -f data/stl10_binary/unlabeled_X.bin ]; then
    echo data/stl10_binary
    return
  fi
  if [ "$(cat "$dir/.limit" 2>/dev/null)" != "$limit" ]; then
    echo "converting Fashion-MNIST (first $limit images of each set) into $dir" >&2
    rm -rf "$dir.tmp"
    mkdir -p data
    "$SC_CONVERT" --limit "$limit" "$dir.tmp" >&2
    echo "$limit" >"$dir.tmp/.limit"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# Seconds as M:SS.
sc_minutes() {
  printf '%d:%02d' $(($1 / 60)) $(($1 % 60))
}
