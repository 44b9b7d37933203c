# datacore — PGXS build
EXTENSION = datacore
EXTVERSION = $(shell grep default_version $(EXTENSION).control | sed -e "s/default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/")

MODULE_big = datacore
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script is assembled from one file per subsystem (sql/install/NN_name.sql),
# so each service owns its own SQL; upgrade scripts are hand-written in sql/.  The full
# scripts of released versions stay in sql/ unchanged, so CREATE EXTENSION ... VERSION
# 'old' followed by ALTER EXTENSION ... UPDATE can be tested against a fresh install.
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

# Every sql/*.sql file is a regression test; each one creates what it needs and cleans up.
REGRESS = $(sort $(notdir $(basename $(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=.

DC_PKGS = libcurl jansson hiredis libxml-2.0
PG_CPPFLAGS = -Isrc -DDC_VERSION=\"$(EXTVERSION)\" $(shell pkg-config --cflags $(DC_PKGS))
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = $(shell pkg-config --libs $(DC_PKGS))

EXTRA_CLEAN = $(DATA_built)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

$(OBJS): $(wildcard src/*.h)

# The regression tests, for test/check to notice any that did not run.
.PHONY: regress-list
regress-list:
	@echo $(REGRESS)

# Fuzzing (test/fuzz, clang libFuzzer): `make fuzz` runs every target for
# FUZZ_SECONDS (600) one after the other; `make fuzz-check` runs each over its
# committed corpus (FUZZ_CHECK_SECONDS more each, default 0).
.PHONY: fuzz fuzz-check
fuzz:
	$(MAKE) -C test/fuzz run PG_CONFIG=$(PG_CONFIG)
fuzz-check:
	$(MAKE) -C test/fuzz check PG_CONFIG=$(PG_CONFIG)

# The regression suite with the server under valgrind memcheck (test/valgrind):
# takes the shared test lock per part, VALGRIND_PARTS (3) parts.
VALGRIND_PARTS ?= 3
.PHONY: valgrind-check
valgrind-check:
	PG_CONFIG=$(PG_CONFIG) test/valgrind/check.sh $(VALGRIND_PARTS)
