# make dist:  build dependencies, every .deb, and an apt index, all in dist/
# make check: every test (builds dist/ first, installs what the tests need)

# Debian's tools and python3, never a pyenv or virtualenv one.
export PATH := /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND := noninteractive
export LC_ALL := C.UTF-8

# Each release's packages are built on that release and say so in their version
# (0.3.0+deb12, 0.3.0+deb13: a release upgrade picks the newer release's).
RELEASE := $(shell . /etc/os-release && echo "$$VERSION_CODENAME")
RELEASE_ID := $(shell . /etc/os-release && echo "$$VERSION_ID")

APT := apt-get -y -q -o DPkg::Lock::Timeout=600
TEST_DEPS := autopkgtest curl iproute2 lintian mmdebstrap nginx nova-common openssl piuparts \
	python3-nova python3-openstackclient python3-pastedeploy python3-pytest \
	ssl-cert systemd-container uidmap uwsgi-core uwsgi-plugin-python3

.PHONY: dist check clean

dist:
	$(APT) update
	$(APT) install --no-install-recommends apt-utils dpkg-dev
	$(APT) build-dep ./
	rm -rf build dist
	mkdir -p build/src dist
	git ls-files --cached --others --exclude-standard > build/files
	tar -cf - -T build/files | tar -xf - -C build/src
	@[ -n "$(RELEASE_ID)" ] || { echo "make dist: /etc/os-release names no Debian release" >&2; exit 1; }
	cd build/src && { \
	  printf '%s (%s+deb%s) %s; urgency=medium\n\n  * Built for Debian %s (%s).\n\n -- %s  %s\n\n' \
	    "$$(dpkg-parsechangelog -S Source)" "$$(dpkg-parsechangelog -S Version)" $(RELEASE_ID) \
	    $(RELEASE) $(RELEASE_ID) $(RELEASE) "$$(dpkg-parsechangelog -S Maintainer)" \
	    "$$(date -R -u -d "@$$(( $$(dpkg-parsechangelog -S Timestamp) + 1 ))")"; \
	  cat debian/changelog; } > changelog && \
	  mv changelog debian/changelog
	cd build/src && dpkg-buildpackage -us -uc -b
	mv build/*.deb dist/
	python3-ooi/build dist
	cd dist && apt-ftparchive packages . > Packages
	@echo "dist/ is an apt repository: deb [trusted=yes] file:$(CURDIR)/dist ./"

check: dist
	$(APT) install --no-install-recommends $(TEST_DEPS)
	/usr/bin/python3 -m pytest tests

clean:
	rm -rf build dist
