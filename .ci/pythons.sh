# Sourced by the CI scripts: `python_for X.Y` prints the path of a working Python X.Y,
# installing one if none is found. Messages go to stderr, the path alone to stdout.
#
# Where a machine keeps its Pythons: Debian ships one (3.11 on bookworm, 3.13 on trixie) as
# /usr/bin/python3.X; pyenv keeps others in $PYENV_ROOT/versions/X.Y.Z/bin. A pyenv shim on PATH
# (`python3.12`) only runs when that version is selected, so every candidate is tried by running
# it, never trusted for being on PATH.

_python_works() {
    "$1" -c 'import ensurepip, ssl, sqlite3, venv' >/dev/null 2>&1
}

_find_python() {
    local version=$1 candidate
    for candidate in "python$version" \
            "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version" \
            /root/.pyenv/versions/"$version".*/bin/"python$version" \
            /usr/local/bin/"python$version" /usr/bin/"python$version"; do
        if _python_works "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

python_for() {
    local version=$1 found
    if found=$(_find_python "$version"); then
        echo "$found"
        return 0
    fi
    echo "Python $version not found; installing it" >&2
    # Debian's own package, where this release has that version.
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >&2 || true
        if apt-cache show "python$version-venv" >/dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$version-venv" >&2
            found=$(_find_python "$version") && { echo "$found"; return 0; }
        fi
    fi
    # uv fetches a standalone build; pyenv compiles one (both need their download sites).
    if python3 -m pip install -q uv >&2 && python3 -m uv python install "$version" >&2; then
        found=$(python3 -m uv python find "$version") && _python_works "$found" \
            && { echo "$found"; return 0; }
    fi
    if command -v pyenv >/dev/null 2>&1 && pyenv install -s "$version" >&2; then
        found=$(_find_python "$version") && { echo "$found"; return 0; }
    fi
    echo "No Python $version could be found or installed." >&2
    return 1
}
