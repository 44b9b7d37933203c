-- datacore 0.1.0 -> 0.2.0
--
-- Each change to sql/install/ since 0.1.0 appears here as well, in the same
-- order; test/t/upgrade.sh checks that an updated 0.1.0 installation matches a
-- fresh 0.2.0 one object by object.

\echo Use "ALTER EXTENSION datacore UPDATE TO '0.2.0'" to load this file. \quit
