package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

func ExampleClient_Send() {
	srv, err := startServer() // a Herald server on a fresh SQLite file
	if err != nil {
		log.Fatal(err)
	}
	defer srv.close()
	c := client.New(srv.URL, srv.Key)
	defer c.CloseIdleConnections()
	ctx := context.Background()

	order := &herald.Event{
		ID: "order-1", Category: "orders", Type: "orderPlaced",
		Data: json.RawMessage(`{"total":"12.50","currency":"EUR"}`),
	}
	res, err := c.Send(ctx, order)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ID, "duplicate:", res.Duplicate)

	// The same event again, as a retry would send it: stored once.
	res, err = c.Send(ctx, order)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ID, "duplicate:", res.Duplicate)

	// Another event under the same id is refused, naming the field.
	_, err = c.Send(ctx, &herald.Event{ID: "order-1", Category: "orders", Type: "orderCancelled"})
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Errors[0].Pointer, apiErr.Errors[0].Detail)
	}
	// Output:
	// order-1 duplicate: false
	// order-1 duplicate: true
	// 409 /id "order-1" is taken by different content
}

func ExampleClient_Events() {
	srv, err := startServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.close()
	c := client.New(srv.URL, srv.Key)
	defer c.CloseIdleConnections()
	ctx := context.Background()

	var events []*herald.Event
	for i := range 5 {
		events = append(events, &herald.Event{
			ID: fmt.Sprintf("view-%d", i), Category: "pages", Type: "pageViewed", PrimaryID: fmt.Sprintf("/page/%d", i),
		})
	}
	if _, err := c.SendBatch(ctx, events); err != nil {
		log.Fatal(err)
	}

	// Two events a page: Events fetches the next page as the loop asks.
	for e, err := range c.Events(ctx, client.EventQuery{Type: "pageViewed", Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.ID, e.PrimaryID)
	}
	// Output:
	// view-0 /page/0
	// view-1 /page/1
	// view-2 /page/2
	// view-3 /page/3
	// view-4 /page/4
}

func ExampleProducer() {
	srv, err := startServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.close()
	c := client.New(srv.URL, srv.Key)
	defer c.CloseIdleConnections()
	ctx := context.Background()

	statuses := map[string]int{}
	p := c.NewProducer(client.ProducerOptions{
		BatchSize: 10,
		Linger:    time.Minute, // batches are cut by size, and by Close
		// Called one at a time, from the producer's goroutines.
		OnResult: func(e *herald.Event, item client.BatchItem, err error) { statuses[item.Status]++ },
	})
	for i := range 25 {
		e := &herald.Event{ID: fmt.Sprintf("click-%02d", i), Category: "ui", Type: "clicked"}
		if err := p.Send(ctx, e); err != nil {
			log.Fatal(err)
		}
	}
	// One event more without a category: refused by the server, and
	// reported with the field at fault.
	if err := p.Send(ctx, &herald.Event{ID: "click-bad", Type: "clicked"}); err != nil {
		log.Fatal(err)
	}
	err = p.Close(ctx) // sends what is buffered, waits, stops
	fmt.Println(statuses[client.ItemCreated], "created,", statuses[client.ItemFailed], "failed")
	fmt.Println(err)
	// Output:
	// 25 created, 1 failed
	// client: 1 events not stored: event click-bad: herald: 400 Invalid request: /events/5/category: is required
}

func ExampleClient_Stream() {
	srv, err := startServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.close()
	c := client.New(srv.URL, srv.Key)
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Start after the newest event, so that the stream holds exactly what
	// is sent from here on, however soon it connects.
	var last int64
	for e, err := range c.Events(ctx, client.EventQuery{Limit: 1000}) {
		if err != nil {
			log.Fatal(err)
		}
		last = e.Seq
	}
	sent := make(chan error, 1)
	go func() {
		_, err := c.SendBatch(ctx, []*herald.Event{
			{ID: "tx-1", Category: "payments", Type: "paymentSent"},
			{ID: "page-1", Category: "pages", Type: "pageViewed"},
			{ID: "tx-2", Category: "payments", Type: "paymentSent"},
		})
		sent <- err
	}()

	n := 0
	for e, err := range c.Stream(ctx, client.StreamQuery{Categories: []string{"payments"}, AfterSeq: last}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.ID, e.Type)
		if n++; n == 2 {
			break
		}
	}
	if err := <-sent; err != nil {
		log.Fatal(err)
	}
	// Output:
	// tx-1 paymentSent
	// tx-2 paymentSent
}
