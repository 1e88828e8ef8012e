"""A payment's whole journey through a running server, every answer checked against the API
document: what schemathesis cannot reach on its own, because a payment needs ids and a QR
payload from earlier answers (a merchant, a line), and a step-up needs the code the phone
received.

Usage: openapi_journey.py BASE_URL ADMIN_KEY PHONE_GATEWAY_URL PHONE_TOKEN
Exits 1 naming the first answer that is not what the document says.
"""

import re
import sys
import time

import jsonschema_rs
import requests

BASE, KEY, PHONE, PHONE_TOKEN = sys.argv[1:5]
ADMIN = {"Authorization": f"Bearer {KEY}"}
DOCUMENT = requests.get(f"{BASE}/openapi.json", timeout=10).json()
CHECKED = []


def operation(method, path):
    """The documented operation for a concrete path (ids in the template's `{id}`)."""
    for template, item in DOCUMENT["paths"].items():
        pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise SystemExit(f"{method} {path}: not in the document")


def check(method, path, expected_status, headers=ADMIN, **kwargs):
    """Sends the request; the answer must have the expected status (one of them, given a
    tuple) and match the document."""
    template, op = operation(method, path)
    answer = requests.request(method, f"{BASE}{path}", headers=headers, timeout=10, **kwargs)
    expected = expected_status if isinstance(expected_status, tuple) else (expected_status,)
    if answer.status_code not in expected:
        raise SystemExit(f"{method} {path}: {answer.status_code} (expected {expected_status}): {answer.text}")
    documented = op["responses"].get(str(answer.status_code), op["responses"]["default"])
    content_type = answer.headers.get("content-type", "").split(";")[0]
    if content_type not in documented["content"]:
        raise SystemExit(f"{method} {path}: content type {content_type} is not documented")
    schema = dict(documented["content"][content_type]["schema"], components=DOCUMENT["components"])
    body = answer.json()
    errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(body)]
    if errors:
        raise SystemExit(f"{method} {path} ({answer.status_code}) does not match {template}: {errors[:3]}\n{body}")
    CHECKED.append(f"{method} {template} {answer.status_code}")
    return body


def code_for(challenge_id):
    for _ in range(200):
        got = requests.get(PHONE, headers={"Authorization": f"Bearer {PHONE_TOKEN}"},
                           params={"challenge_id": challenge_id}, timeout=10).json()
        for message in got["messages"]:
            # In the shopper's language: Chinese unless their contact says English.
            text = message["text"].get("en") or message["text"].get("zh") or ""
            found = re.search(r"(?<!\d)(\d{6})(?!\d)", text)
            if found:
                return found.group(1)
        time.sleep(0.02)
    raise SystemExit(f"no code reached the phone for {challenge_id}")


def main():
    merchant = check("POST", "/v1/merchants", 201, json={
        "name": "Journey Mart", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY",
        "onboarded_at": "2024-01-01T00:00:00Z"})
    check("GET", f"/v1/merchants/{merchant['id']}", 200)
    check("POST", f"/v1/merchants/{merchant['id']}/qr", 201, json={"amount": "35.00", "bill_number": "B1"})
    line = check("POST", "/v1/credit-lines", 201, json={
        "user_id": "journey", "currency": "CNY", "limit": "5000.00", "profile": {"kyc_level": 2},
        "opened_at": "2024-01-01T00:00:00Z"})
    context = {"device_id": "journey-phone", "ip": "203.0.113.9", "network": "wifi"}
    pay = {"credit_line_id": line["id"], "qr_payload": merchant["qr_payload"], "amount": "12.30", "context": context}
    paid = check("POST", "/v1/payments", 201, json=pay, )
    assert paid["status"] == "authorized", paid
    check("GET", f"/v1/payments/{paid['id']}", 200)
    check("POST", f"/v1/payments/{paid['id']}/capture", 200, json={"amount": "10.00"})
    check("POST", f"/v1/payments/{paid['id']}/refunds", 201, json={"amount": "2.00"})
    check("GET", f"/v1/payments/{paid['id']}/decision", 200)
    check("POST", f"/v1/payments/{paid['id']}/decision/replay", 200)
    check("POST", f"/v1/credit-lines/{line['id']}/repayments", 201, json={"amount": "5.00"})
    second = check("POST", "/v1/payments", 201, json=dict(pay, amount="7.00"))
    check("POST", f"/v1/payments/{second['id']}/void", 200, json={})
    # A large payment from a new phone is stepped up; the code reaches only the phone.
    big = dict(pay, amount="1500.00", context={"device_id": "a-new-phone", "ip": "198.51.100.20", "network": "5g"})
    stepped = check("POST", "/v1/payments", 201, json=big)
    challenge_id = stepped["decision"].get("challenge_id")
    if challenge_id:
        check("GET", f"/v1/challenges/{challenge_id}", 200)
        check("POST", f"/v1/challenges/{challenge_id}", 200, json={"code": code_for(challenge_id)})
    check("GET", f"/v1/credit-lines/{line['id']}", 200)
    check("GET", f"/v1/credit-lines/{line['id']}/notifications", 200)
    # A wallet, its line and a shopper token reading it.
    wallet = check("POST", "/v1/api-keys", 201, json={"name": "journey wallet", "kind": "wallet", "wallet_id": "jw"})
    as_wallet = {"Authorization": f"Bearer {wallet['key']}"}
    own = check("POST", "/v1/credit-lines", 201, headers=as_wallet,
                json={"user_id": "journey-w", "currency": "CNY", "limit": "100.00"})
    token = check("POST", "/v1/shopper-tokens", 201, headers=as_wallet,
                  json={"credit_line_id": own["id"], "device_id": "p1"})
    check("GET", f"/v1/credit-lines/{own['id']}", 200, headers={"Authorization": f"Bearer {token['token']}"})
    check("POST", f"/v1/api-keys/{wallet['id']}/rotate", 201, json={"overlap_s": 0})
    # Lines applied for: the credit scorecard sets the limit, or declines with its reasons.
    # Answers from the document's own schema, the n-th level of every category, until both a
    # line and a refusal have been seen.
    fields = DOCUMENT["components"]["schemas"]["CreditApplication"]["properties"]
    seen = set()
    for n in range(12):
        application = {name: (f["enum"][n % len(f["enum"])] if "enum" in f else 6 * (n + 1))
                       for name, f in fields.items()}
        answer = check("POST", "/v1/credit-lines", (201, 422), json={
            "user_id": f"journey-applicant-{n}", "currency": "CNY", "application": application,
            "monthly_income": "12000.00"})
        seen.add("line" if "credit" in answer and "id" in answer else answer.get("code"))
        if {"line", "credit_declined"} <= seen:
            break
    if "line" not in seen:
        raise SystemExit(f"no application got a line: {seen}")
    check("POST", "/v1/credit-lines", 400, json={
        "user_id": "journey-both", "currency": "CNY", "limit": "1.00", "application": application,
        "monthly_income": "1.00"})
    # Refusals are problem+json as documented.
    check("GET", "/v1/payments/pay_absent", 404)
    check("GET", "/v1/stats", 401, headers={})
    check("POST", "/v1/payments", 400, json={"credit_line_id": 5})
    print(f"openapi journey: {len(CHECKED)} answers match the document")


main()
