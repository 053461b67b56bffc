# shellcheck shell=bash
# Sourced by the image builds: image_current IMAGE RECIPE is true when IMAGE exists and was built
# from RECIPE (its itsop.recipe label), so the build can be skipped.
image_current() {
  podman image exists "$1" &&
    [[ "$(podman image inspect --format '{{ index .Labels "itsop.recipe" }}' "$1" 2>/dev/null)" == "$2" ]]
}
