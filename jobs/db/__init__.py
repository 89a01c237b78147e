"""The database side of jobs.

sql.py         every SQL statement jobs writes by hand, each named and described once
connection.py  how they run: prepared psycopg cursors on Django's connection, the clock
bulk.py        set-based writes of the scheduler's hot path (COPY, arrays in text form)
"""
