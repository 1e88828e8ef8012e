#!/usr/bin/env python3
"""Reference runs of the standard Python tools on the same data and split as `xiezhi model`.

Run by hand (not needed by the product or the tests):

    pip install scikit-learn lightgbm pandas
    python3 tools/reference_models.py [--data ../shared/data] [dataset ...]

For each credit dataset: scikit-learn LogisticRegression (default parameters; one-hot
categories, median-imputed and standardised numbers, max_iter raised so it converges) and
LightGBM's LGBMClassifier with default parameters (categories as pandas categories), trained
on the fixed training split (for the logistic regression, categories of more than 200
levels are left out) (data-row index mod 10 not in {0, 1, 2}) and scored on the test
split. Prints one JSON line per (dataset, model) with roc_auc, ks, pr_auc and brier.
"""
import argparse
import json
import os
import sys

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

SBA_DROP = ["LoanNr_ChkDgt", "Name", "ChgOffDate", "ChgOffPrinGr", "BalanceGross", "ApprovalDate", "DisbursementDate", "Zip"]
SBA_CAT = ["NAICS", "FranchiseCode", "UrbanRural", "NewExist", "ApprovalFY"]
SBA_MONEY = ["DisbursementGross", "GrAppv", "SBA_Appv"]

# name: (file, target, positive labels, drop, forced categorical, money columns)
DATASETS = {
    "german_credit": ("credit/german_credit.csv", "creditability", ["bad"], [], [], []),
    "modeldata_credit_data": ("credit/modeldata_credit_data.csv", "Status", ["bad"], ["rownames"], [], []),
    "modeldata_lending_club": ("credit/modeldata_lending_club.csv", "Class", ["bad"], ["rownames"], [], []),
    "taiwan_uci_credit_card_sample6000": ("credit/taiwan_uci_credit_card_sample6000.csv", "default", ["1"], [], ["EDUCATION", "MARRIAGE"], []),
    "sba_national_loans": ("credit/sba_national_loans.csv.gz", "MIS_Status", ["CHGOFF"], SBA_DROP, SBA_CAT, SBA_MONEY),
    "sba_no_term": ("credit/sba_national_loans.csv.gz", "MIS_Status", ["CHGOFF"], SBA_DROP + ["Term"], SBA_CAT, SBA_MONEY),
}


def ks(y, p):
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(np.abs(tpr - fpr)))


def load(data, name):
    path, target, positive, drop, categorical, money = DATASETS[name]
    df = pd.read_csv(os.path.join(data, path), dtype=str, keep_default_na=False)
    df["__row"] = np.arange(len(df))
    df = df[df[target].str.strip() != ""]
    y = df[target].str.strip().isin(positive).astype(int).values
    test = (df["__row"].values % 10) <= 2
    X = df.drop(columns=[target, "__row"] + drop)
    for c in X.columns:
        col = X[c].str.strip()
        if c in money:
            col = col.str.replace("$", "", regex=False).str.replace(",", "", regex=False)
        numeric = pd.to_numeric(col.replace("", np.nan), errors="coerce")
        if c not in categorical and numeric.notna().sum() == (col != "").sum():
            X[c] = numeric
        else:
            X[c] = col.replace("", np.nan).astype("category")
    return X, y, test


def load_fraud(data):
    """The card transactions on their raw columns (the Rust loader adds per-card and per-store
    velocity; this baseline does not), sorted by datetime then id, the earliest 70 % train."""
    df = pd.read_csv(os.path.join(data, "fraud/evalml_fraud_transactions.csv.gz"), dtype=str, keep_default_na=False)
    df = df[df["fraud"].str.strip() != ""]
    t = pd.to_datetime(df["datetime"])
    df = df.assign(__t=t, __id=df["id"].astype(int)).sort_values(["__t", "__id"])
    y = (df["fraud"].str.strip() == "True").astype(int).values
    X = pd.DataFrame({
        "amount": pd.to_numeric(df["amount"]), "lat": pd.to_numeric(df["lat"], errors="coerce"),
        "lng": pd.to_numeric(df["lng"], errors="coerce"), "hour": df["__t"].dt.hour, "dow": df["__t"].dt.dayofweek,
    }, index=df.index)
    for c in ["currency", "customer_present", "provider", "region", "country", "expiration_date"]:
        X[c] = df[c].replace("", np.nan).astype("category")
    test = np.arange(len(df)) >= len(df) * 7 // 10
    return X, y, test


def recall_at_fpr(y, p, max_fpr=0.01):
    fpr, tpr, _ = roc_curve(y, p)
    return float(tpr[fpr <= max_fpr].max())


def metrics(name, model, y, p):
    return {"dataset": name, "model": model, "rows_test": int(len(y)), "recall_at_1pct_fpr": round(recall_at_fpr(y, p), 6),
            "roc_auc": round(float(roc_auc_score(y, p)), 6), "ks": round(ks(y, p), 6),
            "pr_auc": round(float(average_precision_score(y, p)), 6),
            "brier": round(float(brier_score_loss(y, p)), 6)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("XIEZHI_DATA_DIR", "../shared/data"))
    parser.add_argument("datasets", nargs="*",
                        default=[d for d in DATASETS if not d.startswith("sba")] + ["evalml_fraud_transactions"])
    args = parser.parse_args()
    import lightgbm as lgb
    for name in args.datasets:
        X, y, test = load_fraud(args.data) if name == "evalml_fraud_transactions" else load(args.data, name)
        Xtr, Xte, ytr, yte = X[~test], X[test], y[~test], y[test]
        # Logistic regression: one-hot categories, median-imputed standardised numbers.
        num = [c for c in X.columns if X[c].dtype != "category"]
        cat = [c for c in X.columns if X[c].dtype == "category"]
        # One-hot columns for categories of at most 200 levels: SBA's City, Bank and NAICS
        # (thousands of levels, 628k rows) would not fit in memory as dense dummies.
        small_cat = [c for c in cat if Xtr[c].nunique() <= 200]
        med = Xtr[num].median()
        mu, sd = Xtr[num].fillna(med).mean(), Xtr[num].fillna(med).std().replace(0, 1)
        def design(part):
            n = ((part[num].fillna(med) - mu) / sd) if num else pd.DataFrame(index=part.index)
            c = pd.get_dummies(part[small_cat].astype(str), dummy_na=False) if small_cat else pd.DataFrame(index=part.index)
            return pd.concat([n, c], axis=1)
        Dtr = design(Xtr)
        Dte = design(Xte).reindex(columns=Dtr.columns, fill_value=0)
        lr = LogisticRegression(max_iter=5000).fit(Dtr.values.astype(float), ytr)
        print(json.dumps(metrics(name, "sklearn_logistic_regression", yte, lr.predict_proba(Dte.values.astype(float))[:, 1])))
        sys.stdout.flush()
        gbm = lgb.LGBMClassifier(verbose=-1).fit(Xtr, ytr)
        print(json.dumps(metrics(name, "lightgbm_default", yte, gbm.predict_proba(Xte)[:, 1])))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
