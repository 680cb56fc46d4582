# Debian packages for the scripts: `apt_install PACKAGE...` runs `apt-get update` once per
# script run (a fresh machine has no package lists), then installs quietly.

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
