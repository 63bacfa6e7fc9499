# Shared by the example scripts (sourced from the repository's root):
# setup and the default dataset.

# Installs the Debian packages that are missing, then builds the compiler
# (with the runtime libraries it links into training binaries) and the
# dataset converter into build/.
sc_setup() {
  tools/install-deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" --target simclrc fmnist2stl10
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
    build/tools/fmnist2stl10 --limit "$limit" "$dir.tmp" >&2
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
