# Notifications sent from the outbox: an email's subject and body, an SMS, and a webhook's
# `summary` (the subject). Written for the person reading them, not for an analyst.
# Each kind may use only the arguments `EventKind::required_arguments` lists; a test renders
# every kind in every language and fails on a missing message or an unfilled placeable.

-brand = Xiezhi
scope-text = { $scope ->
    [payment] payments
    [scan_to_pay] scan-to-pay credit payments
   *[credit_line] your credit line
}

email-footer = This message was sent by { -brand }. Reply to your wallet's support if anything here looks wrong.

restriction-imposed-subject = Credit payments on your account are paused
restriction-imposed-body =
    We have paused { scope-text } on your account until { $expires_at }.
    You can lift this sooner by verifying your identity in your wallet app.
    If you think this is a mistake, you can appeal until { $appeal_deadline }; a person will review it.
    Reference: { $restriction_id }
restriction-imposed-sms = { -brand }: { scope-text } paused until { $expires_at }. Verify in your wallet or appeal by { $appeal_deadline }. Ref { $restriction_id }

restriction-lifted-subject = Credit payments on your account work again
restriction-lifted-body =
    { $lifted_by ->
        [expired] The pause on { scope-text } has ended.
        [challenge] You verified your identity, so { scope-text } work again.
        [profile] You completed your profile, so { scope-text } work again.
        [appeal] A reviewer upheld your appeal, so { scope-text } work again.
       *[operator] Our team lifted the pause on { scope-text }.
    }
    Reference: { $restriction_id }
restriction-lifted-sms = { -brand }: { scope-text } work again. Ref { $restriction_id }

challenge-code-subject = Your { -brand } verification code
challenge-code-body =
    Your verification code is { $code }. It expires in { $minutes } minutes.
    Nobody from { -brand } will ever ask you for it.
challenge-code-sms = { $code } is your { -brand } code, valid { $minutes } min. Never share it.

appeal-received-subject = We received your appeal
appeal-received-body =
    A person will review your appeal by { $deadline }.
    Reference: { $appeal_id }
appeal-received-sms = { -brand }: appeal received; a person will decide by { $deadline }. Ref { $appeal_id }

appeal-decided-subject = Your appeal has been decided
appeal-decided-body =
    { $outcome ->
        [overturn] The reviewer found the decision was wrong and reversed it. Any restriction it caused is lifted.
       *[uphold] The reviewer looked at your appeal and kept the decision.
    }
    Reference: { $appeal_id }
appeal-decided-sms = { $outcome ->
        [overturn] { -brand }: your appeal succeeded; the decision is reversed. Ref { $appeal_id }
       *[uphold] { -brand }: your appeal was reviewed; the decision stands. Ref { $appeal_id }
    }

compensation-paid-subject = Compensation has been paid to your credit line
compensation-paid-body =
    We paid { $amount } { $currency } into your credit line to make up for a decision that was wrong.
    Reference: { $appeal_id }
compensation-paid-sms = { -brand }: { $amount } { $currency } compensation paid to your credit line. Ref { $appeal_id }

limit-changed-subject = Your credit limit is changing
limit-changed-body =
    Your credit limit on line { $credit_line_id } changes from { $old_limit } { $currency } to { $new_limit } { $currency } on { $effective_at }.
limit-changed-sms = { -brand }: your credit limit changes from { $old_limit } to { $new_limit } { $currency } on { $effective_at }.
