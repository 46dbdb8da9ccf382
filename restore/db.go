package main

import (
	"database/sql"

	_ "github.com/go-sql-driver/mysql" // MySQL driver for the row-count checks
)

func openDB(dsn string) (*sql.DB, error) { return sql.Open("mysql", dsn) }
