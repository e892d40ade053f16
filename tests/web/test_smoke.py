def test_customer_logs_in_and_sees_dashboard(customer_client, customer_login):
    resp = customer_client.get("/")
    assert resp.status_code == 200
    assert customer_login.customer.display_name in resp.get_data(as_text=True)


def test_operator_logs_in_and_sees_dashboard(staff_client):
    resp = staff_client.get("/staff/")
    assert resp.status_code == 200
    assert "Dashboard" in resp.get_data(as_text=True)


def test_anonymous_is_sent_to_login(client):
    assert client.get("/").status_code == 302
    assert client.get("/staff/").status_code == 302
