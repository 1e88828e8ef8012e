# Explanations shown to the user. Written for a shopper at a till, not for an analyst:
# what happened, in one sentence, without blame. The ways out are listed separately.

outcome-approve = Payment approved.
outcome-step-up = We need one more check before this payment goes through.
outcome-decline = This payment did not go through.
outcome-restrict = Paying with credit is paused on your account for now.

line-restricted = Credit payments on your account are paused until { $until }.
policy-payment-cap = Credit payments are limited to { $cap } each by regulation.
policy-daily-cap = Credit payments are limited to { $cap } a day by regulation; you can still pay up to { $remaining } today.
policy-mcc-blocked = Credit cannot be used at this kind of merchant (category { $mcc }) under current rules.
policy-min-age = Credit payments are available from age { $min_age }.
policy-kyc-level = Credit payments need a verified identity (level { $min_level }) first.
policy-region = Credit payments are not available in your region ({ $region }) at the moment.
deny-listed-user = Your account is under review, so credit payments are paused.
deny-listed-device = This device cannot be used for credit payments.
deny-listed-ip = The network you are on has been linked to misuse.
deny-listed-merchant = This merchant cannot accept credit payments at the moment.
velocity-burst = There were many payments from your account in a short time.
card-testing = There were many very small payments from your account in a short time, which is a common sign of stolen account details.
spend-velocity = You have spent an unusual amount in the last hour.
amount-unusual = This amount is much larger than your usual payments.
merchant-cash-out-pattern = This merchant's recent payments look like cash withdrawals, which credit cannot be used for.
merchant-qr-suspicious = This merchant code shows signs of having been replaced; please check it with the merchant.
new-device-high-amount = This is a large payment from a device you have not used before.
device-shared = This device has been used by many different accounts.
ip-changed = You are paying from a network we have not seen you use before.
ip-shared = Many different accounts are paying from this network.
account-takeover-suspected = This looks like someone else may be using your account, so we paused credit payments to protect you.
fraud-score-elevated = Some details of this payment look unusual for your account.
fraud-score-high = This payment looks very unlike your usual activity.
challenge-failed = The verification was not completed.
repeated-challenge-failures = Verification failed several times, so credit payments are paused to protect your account.
new-line-spend-limit = Your credit line is new, so for now one day of spending is held to part of its limit; a smaller amount goes through.
insufficient-credit = Your available credit is { $available }.
band-spend-cap = Your credit line is new (credit band { $band }), so on a day you pay a shop you have not paid before, up to { $cap } of it can be used; { $remaining } is left today.
credit-history-weak = Your repayment history weighs against a higher score.
credit-amount-high = The amount is high for your profile.
credit-term-long = The repayment term is long for your profile.
credit-income-low = Your declared income is low for this credit.
credit-savings-low = Your savings, account balances or assets are low.
credit-employment-short = Your time in your current employment is short.
credit-debt-high = Your existing debts are high.
credit-utilization-high = You use a high share of the credit you already have.
credit-recent-inquiries = You have applied for credit several times recently.
credit-profile-other = Other details of your application weigh against a higher score.
credit-purpose = What the credit is for weighs against a higher score.
credit-housing = Your housing situation (for example renting rather than owning) weighs against a higher score.
credit-residence-short = You have lived at your current address for a short time.
credit-guarantor-none = No co-applicant or guarantor supports the application.
credit-employment-type = Your kind of employment weighs against a higher score.
credit-phone-unregistered = No telephone is registered in your name.
credit-dependants = The number of people you provide for weighs against a higher score.

# Messages to the user's inbox (SMS or push in a deployment).
notify-code-sent = A verification code was sent to your phone by text message. It expires in { $minutes } minutes. Never share it with anyone.
notify-one-time-code = Your Xiezhi verification code is { $code }. It expires in { $minutes } minutes. Never share it with anyone.
notify-restricted = Credit payments on your account are paused until { $until }. You can verify your identity to lift this now, or appeal by { $deadline }.
notify-challenge-passed = Verified. Your payment went through.
notify-restriction-lifted = Credit payments on your account are available again.
