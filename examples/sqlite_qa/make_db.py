"""Build shop.db, the small database of the SQLite question-answering example."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

CUSTOMERS = [
    (1, "Ada Lovelace", "London"),
    (2, "Alan Turing", "Manchester"),
    (3, "Grace Hopper", "New York"),
    (4, "Edsger Dijkstra", "Amsterdam"),
    (5, "Barbara Liskov", "Boston"),
]
PRODUCTS = [
    (1, "keyboard", 45.0),
    (2, "mouse", 19.5),
    (3, "monitor", 189.0),
    (4, "laptop stand", 32.25),
    (5, "usb cable", 7.99),
]
ORDERS = [
    (1, 1, 3, 1, "2026-01-05"),
    (2, 1, 2, 2, "2026-01-06"),
    (3, 2, 1, 1, "2026-02-11"),
    (4, 3, 5, 4, "2026-02-12"),
    (5, 3, 3, 2, "2026-03-01"),
    (6, 4, 4, 1, "2026-03-15"),
    (7, 5, 2, 3, "2026-03-20"),
    (8, 5, 1, 1, "2026-04-02"),
    (9, 2, 5, 10, "2026-04-09"),
]


def build(path: Path) -> None:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
            CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL);
            CREATE TABLE orders (
                id INTEGER PRIMARY KEY,
                customer_id INTEGER REFERENCES customers(id),
                product_id INTEGER REFERENCES products(id),
                quantity INTEGER NOT NULL,
                ordered_on TEXT NOT NULL
            );
            """
        )
        db.executemany("INSERT INTO customers VALUES (?, ?, ?)", CUSTOMERS)
        db.executemany("INSERT INTO products VALUES (?, ?, ?)", PRODUCTS)
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", ORDERS)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("shop.db"))
