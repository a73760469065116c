from panther_aws_helpers import aws_cloudtrail_success

OPEN_EVENTS = {"AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"}


def rule(event):
    if not aws_cloudtrail_success(event):
        return False
    return event.get("eventName") in OPEN_EVENTS


def title(event):
    group = event.deep_get("requestParameters", "groupId", default="<unknown>")
    return f"Security group [{group}] opened by {event.deep_get('userIdentity', 'arn')}"


def severity(event):
    if event.deep_get("requestParameters", "cidrIp") == "0.0.0.0/0":
        return "HIGH"
    return "DEFAULT"


def dedup(event):
    return event.deep_get("requestParameters", "groupId", default="")


def alert_context(event):
    return {
        "group": event.deep_get("requestParameters", "groupId"),
        "actor": event.deep_get("userIdentity", "arn"),
    }
