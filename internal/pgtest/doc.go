// Package pgtest gives each test that needs PostgreSQL a schema of its own.
// The database comes from the environment variable VEIL_TEST_POSTGRES (a
// DSN; CI sets it); without it the tests that ask for one are skipped.
package pgtest
