-- No tables of its own: the runtime's tests use only the runtime tables.
SELECT 1;
