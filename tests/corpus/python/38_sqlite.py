import sqlite3

conn = sqlite3.connect(":memory:")
cur = conn.cursor()
cur.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
cur.executemany("INSERT INTO users (name) VALUES (?)", [("ann",), ("bob",)])
conn.commit()
for row in cur.execute("SELECT id, name FROM users ORDER BY name"):
    print(row)
conn.close()
