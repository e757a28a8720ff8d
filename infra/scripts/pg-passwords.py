#!/usr/bin/env python3
"""Passwords for the local PostgreSQL roles (infra/scripts/ensure-postgres.sh).

    pg-passwords.py PASSFILE ROLE... < "ROLE VERIFIER" lines (pg_authid)

Finds each ROLE's password in the PostgreSQL password file PASSFILE (the
one libpq, psql and sqlx read: lines host:port:database:user:password), or
generates one and adds it there for 127.0.0.1 and localhost on port 5432
(the file stays readable by its owner only). Prints the SQL that makes the
server agree: CREATE ROLE for a role it lacks, ALTER ROLE for one whose
stored SCRAM verifier does not match the password; nothing when all agree.
The SQL carries SCRAM-SHA-256 verifiers computed here, never a password.
"""

import base64
import hashlib
import hmac
import os
import secrets
import sys

PORT = "5432"
HOSTS = ("127.0.0.1", "localhost")


def fields(line):
    """The five fields of a password file line (backslash escapes : and \\)."""
    out, cur, it = [], [], iter(line)
    for ch in it:
        if ch == "\\":
            cur.append(next(it, ""))
        elif ch == ":":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out if len(out) == 5 else None


def lookup(lines, role):
    for line in lines:
        if line.startswith("#"):
            continue
        f = fields(line)
        if f and f[0] in ("127.0.0.1", "*") and f[1] in (PORT, "*") and f[2] == "*" and f[3] == role:
            return f[4]
    return None


def scram(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def verifier(password):
    salt = os.urandom(16)
    stored, server = scram(password, salt, 4096)
    b64 = lambda b: base64.b64encode(b).decode()
    return f"SCRAM-SHA-256$4096:{b64(salt)}${b64(stored)}:{b64(server)}"


def matches(stored, password):
    """Whether a pg_authid SCRAM-SHA-256 verifier was made from `password`."""
    try:
        method, rest = stored.split("$", 1)
        params, keys = rest.split("$", 1)
        iterations, salt = params.split(":", 1)
        stored_key, server_key = keys.split(":", 1)
        if method != "SCRAM-SHA-256":
            return False
        s, k = scram(password, base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(s, base64.b64decode(stored_key)) and hmac.compare_digest(
            k, base64.b64decode(server_key)
        )
    except ValueError:
        return False


def main():
    passfile, roles = sys.argv[1], sys.argv[2:]
    server = dict(line.split(" ", 1) for line in sys.stdin.read().split("\n") if " " in line)
    try:
        with open(passfile) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    added = []
    sql = []
    for role in roles:
        password = lookup(lines, role)
        if password is None:
            password = secrets.token_urlsafe(24).replace("-", "").replace("_", "")
            added += [f"{host}:{PORT}:*:{role}:{password}" for host in HOSTS]
            lines += added[-2:]
        stored = server.get(role)
        if stored is None:
            sql.append(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{verifier(password)}';")
        elif not matches(stored, password):
            sql.append(f"ALTER ROLE \"{role}\" PASSWORD '{verifier(password)}';")
    if added:
        os.umask(0o077)
        new = passfile + ".new"
        with open(new, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(new, 0o600)
        os.replace(new, passfile)
    print("\n".join(sql))


if __name__ == "__main__":
    main()
