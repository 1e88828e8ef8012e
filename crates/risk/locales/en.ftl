# Explanations shown to the user. Written for a shopper at a till, not for an analyst:
# what happened, in one sentence, without blame. The ways out are listed separately.

# A reason's sentence can differ by the decision's outcome: an attribute named after the
# outcome (.step-up, .decline, .restrict) replaces the message's value under that outcome.
# The value is what the code's default outcome says. Every figure a sentence quotes says
# where it comes from.

outcome-approve = Payment approved.
outcome-step-up = We need one more check before this payment goes through.
outcome-decline = This payment did not go through.
outcome-restrict = Credit payments on your account are paused until { $until }. Verifying your identity can lift the pause sooner, and you can ask a person to review it.
    .plain = Credit payments on your account are paused for now.

# The figure of a lower amount that can go through, and where it comes from.
way-lower-amount = You can pay up to { $max } now: { $basis ->
        [policy_payment_cap] that is the most one credit payment may be under current rules.
        [policy_daily_cap] that is what today's cap on credit payments leaves.
        [policy_kyc_level] up to that amount, your current identity level is enough.
        [band_spend_cap] that is what your credit band leaves for today.
        [insufficient_credit] that is your available credit.
       *[usual_amount] that is within what you usually pay (your largest payment so far, or twice your average one).
    }

line-restricted = Credit payments on your account are paused until { $until }.
    .step-up = Credit payments on your account are paused until { $until }, but this payment can go through once you confirm it is you.
    .plain = Credit payments on your account are paused for now.
policy-payment-cap = Credit payments are limited to { $cap } each by regulation.
    .step-up = Under current rules, a credit payment above { $cap } needs one more check.
policy-daily-cap = Credit payments are limited to { $cap } a day by regulation; after the { $spent } you have paid today, { $remaining } is left.
    .step-up = Under current rules, credit payments past { $cap } a day need one more check; after the { $spent } you have paid today, { $remaining } is left.
policy-mcc-blocked = Credit cannot be used at this kind of merchant (category { $mcc }) under current rules.
    .step-up = Under current rules, a credit payment at this kind of merchant (category { $mcc }) needs one more check.
policy-min-age = Credit payments are available from age { $min_age }.
    .step-up = Credit payments by people under { $min_age } need one more check.
policy-kyc-level = { $scope ->
        [above] Credit payments above { $above } need a verified identity at level { $min_level }; yours is at level { $level }.
       *[all] Credit payments need a verified identity at level { $min_level } first; yours is at level { $level }.
    }
    .step-up = { $scope ->
        [above] Credit payments above { $above } by an identity verified below level { $min_level } need one more check; yours is at level { $level }.
       *[all] Credit payments by an identity verified below level { $min_level } need one more check; yours is at level { $level }.
    }
policy-region = Credit payments are not available in your region ({ $region }) at the moment.
    .step-up = Credit payments from your region ({ $region }) need one more check at the moment.
deny-listed-user = Your account is under review, so credit payments are paused.
    .step-up = Your account is under review, so we need to confirm it is you before this payment goes through.
    .decline = Your account is under review, so this payment could not use credit.
deny-listed-device = This device cannot be used for credit payments.
    .step-up = This device has been linked to misuse, so we need to confirm it is you before this payment goes through.
deny-listed-ip = The network you are on has been linked to misuse.
deny-listed-merchant = This merchant cannot accept credit payments at the moment.
    .step-up = This merchant has been linked to misuse, so we need to confirm it is you before paying it with credit.
velocity-burst = There were many payments from your account in a short time.
card-testing = There were many very small payments from your account in a short time, which is a common sign of stolen account details.
spend-velocity = You have spent an unusual amount in the last hour.
amount-unusual = This amount is much larger than your usual payments.
merchant-cash-out-pattern = This merchant's recent payments look like cash withdrawals, which credit cannot be used for.
    .step-up = This merchant's recent payments look like cash withdrawals, so we need to confirm it is you before this payment goes through.
merchant-qr-suspicious = This merchant code shows signs of having been replaced; please check it with the merchant.
new-device-high-amount = This is a large payment from a device you have not used before.
device-shared = This device has been used by many different accounts.
ip-changed = You are paying from a network we have not seen you use before.
ip-shared = Many different accounts are paying from this network.
account-takeover-suspected = This looks like someone else may be using your account, so we paused credit payments to protect you.
    .step-up = This looks like someone else may be using your account, so we need to confirm it is you before this payment goes through.
    .decline = This looks like someone else may be using your account, so we stopped this payment to protect you.
fraud-score-elevated = Some details of this payment look unusual for your account.
fraud-score-high = This payment looks very unlike your usual activity.
challenge-failed = The verification was not completed.
repeated-challenge-failures = Verification failed several times, so credit payments are paused to protect your account.
    .step-up = Verification failed several times recently, so we need to confirm it is you again before this payment goes through.
    .decline = Verification failed several times recently, so this payment was stopped to protect your account.
new-line-spend-limit = Your credit line is new, so for now one day of spending is held to part of its limit.
    .step-up = Your credit line is new, so for now a day of spending past part of its limit needs one more check.
insufficient-credit = This payment of { $amount } is more than your available credit of { $available } (your { $limit } limit less what you owe and what is on hold).
band-spend-cap = Your credit line is new (credit band { $band }), so on a day you pay a shop you have not paid before, up to { $cap } ({ $pct }% of your { $limit } limit) of it can be used; after the { $spent } you have paid today, { $remaining } is left.
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
